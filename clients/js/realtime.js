// realtimed-client: Frappe's `frappe.realtime` client API over socket.io-client,
// for realtimed (or Frappe's own Node server), in browsers and in Node.
//
//   import { connect } from "./realtime.js";
//   const rt = connect("http://127.0.0.1:9000", "site1.local");
//   rt.on("list_update", (data) => console.log(data));
//   rt.doctype_subscribe("ToDo");
//
// Unlike Frappe's client it remembers every room it asked for and asks again
// after each reconnect (the server forgets a socket's rooms when the socket
// goes), and it never stops reconnecting: exponential backoff with jitter,
// no attempt limit, also after the server refused or closed the namespace.
// See README.md in this folder.
import { io } from "socket.io-client";

const RESERVED = new Set(["connect", "connect_error", "disconnect"]);

const key = (doctype, docname) => JSON.stringify([String(doctype), String(docname)]);

export class RealtimeClient {
  /**
   * @param {object} [options]
   * @param {string} [options.url]  server origin, e.g. "http://127.0.0.1:9000";
   *   default: the page's origin (browsers only).
   * @param {string} [options.site] the site; the client joins namespace "/<site>".
   *   Without it `url` is used as is (include the namespace there if needed).
   * @param {boolean} [options.retryRefused=true] retry (with backoff) when the
   *   server refuses the connection (auth failure) or disconnects the socket.
   * @param {() => (string|Promise<string>)} [options.token] the standalone
   *   mode's token (realtimed --auth-mode jwt): called before every connect
   *   and reconnect, so an expired token is replaced by a fresh one.
   * Every other option goes to socket.io-client's io(); the defaults set here
   * are withCredentials: true, reconnectionAttempts: Infinity,
   * reconnectionDelay: 1000, reconnectionDelayMax: 10000, randomizationFactor: 0.5.
   */
  constructor({ url, site, retryRefused = true, token, ...socketOptions } = {}) {
    if (url === undefined) {
      if (typeof location === "undefined") throw new TypeError("RealtimeClient: url is required outside a browser");
      url = location.origin;
    }
    this.url = site ? `${String(url).replace(/\/+$/, "")}/${site}` : String(url);
    this.site = site;
    this.options = {
      withCredentials: true,
      reconnection: true,
      reconnectionAttempts: Infinity,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 10000,
      randomizationFactor: 0.5,
      ...socketOptions,
    };
    if (token) {
      // socket.io-client asks for the auth object on every (re)connect
      this.options.auth = (cb) => {
        Promise.resolve().then(token).then((t) => cb({ token: String(t) }), () => cb({}));
      };
    }
    this.retryRefused = retryRefused;
    // What the server is asked for again on every connect.
    this.doctypes = new Set();
    this.docs = new Map(); // key -> [doctype, docname]
    this.open_docs = new Map(); // key -> [doctype, docname]
    this.tasks = new Set();
    this.connects = 0; // successful namespace connects so far
    this._retries = 0;
    this._retryTimer = null;
    this._closed = false;

    this.socket = io(this.url, this.options);
    this._onConnect = () => {
      this.connects++;
      this._retries = 0;
      this._resubscribe();
    };
    // The namespace was refused (e.g. authentication failed while the web
    // server restarts) or the server disconnected us: socket.io-client does
    // not retry these by itself.
    this._onConnectError = () => {
      if (!this.socket.active) this._retryLater();
    };
    this._onDisconnect = (reason) => {
      if (reason === "io server disconnect") this._retryLater();
    };
    this._internal();
  }

  _internal() {
    this.socket.on("connect", this._onConnect);
    this.socket.on("connect_error", this._onConnectError);
    this.socket.on("disconnect", this._onDisconnect);
  }

  _retryLater() {
    if (!this.retryRefused || this._closed || this._retryTimer) return;
    const { reconnectionDelay: base, reconnectionDelayMax: max, randomizationFactor: jitter } = this.options;
    let ms = Math.min(max, base * 2 ** Math.min(this._retries++, 30));
    ms = Math.max(0, ms * (1 + jitter * (2 * Math.random() - 1)));
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      if (!this._closed && !this.socket.connected) this.socket.connect();
    }, Math.min(ms, max));
  }

  _resubscribe() {
    for (const doctype of this.doctypes) this.socket.emit("doctype_subscribe", doctype);
    for (const [doctype, docname] of this.docs.values()) this.socket.emit("doc_subscribe", doctype, docname);
    for (const [doctype, docname] of this.open_docs.values()) this.socket.emit("doc_open", doctype, docname);
    for (const task_id of this.tasks) this.socket.emit("task_subscribe", task_id);
  }

  // Room requests go out now only when connected; otherwise the next
  // "connect" sends them (socket.io-client's send buffer is not used, so
  // nothing is asked twice).
  _send(event, ...args) {
    if (this.socket.connected) this.socket.emit(event, ...args);
  }

  /** True while the namespace is connected. */
  get connected() {
    return this.socket.connected;
  }

  /** Listen to a server event (also "connect", "disconnect", "connect_error"). */
  on(event, callback) {
    this.socket.on(event, callback);
    return this;
  }

  /** Listen once. */
  once(event, callback) {
    this.socket.once(event, callback);
    return this;
  }

  /** Stop listening: one callback, every callback of the event, or everything. */
  off(event, callback) {
    if (callback !== undefined) {
      this.socket.off(event, callback);
      return this;
    }
    if (event === undefined) this.socket.off();
    else this.socket.off(event);
    if (event === undefined || RESERVED.has(event)) {
      // Keep the client's own handlers.
      this.socket.off("connect", this._onConnect).off("connect_error", this._onConnectError)
        .off("disconnect", this._onDisconnect);
      this._internal();
    }
    return this;
  }

  /** Send an event to the server (buffered while disconnected, like socket.io). */
  emit(event, ...args) {
    this.socket.emit(event, ...args);
    return this;
  }

  /** Frappe's publish(event, message): emit one message to the server. */
  publish(event, message) {
    return this.emit(event, message);
  }

  /** Join room doctype:<doctype> (list_update events); needs read permission. */
  doctype_subscribe(doctype) {
    if (!this.doctypes.has(doctype)) {
      this.doctypes.add(doctype);
      this._send("doctype_subscribe", doctype);
    }
    return this;
  }

  doctype_unsubscribe(doctype) {
    this.doctypes.delete(doctype);
    this._send("doctype_unsubscribe", doctype);
    return this;
  }

  /** Join room doc:<doctype>/<docname> (doc_update, docinfo_update, ...). */
  doc_subscribe(doctype, docname) {
    const k = key(doctype, docname);
    if (!this.docs.has(k)) {
      this.docs.set(k, [doctype, docname]);
      this._send("doc_subscribe", doctype, docname);
    }
    return this;
  }

  doc_unsubscribe(doctype, docname) {
    this.docs.delete(key(doctype, docname));
    this._send("doc_unsubscribe", doctype, docname);
    return this;
  }

  /** Join open_doc:<doctype>/<docname>: presence, "doc_viewers" events. */
  doc_open(doctype, docname) {
    const k = key(doctype, docname);
    if (!this.open_docs.has(k)) {
      this.open_docs.set(k, [doctype, docname]);
      this._send("doc_open", doctype, docname);
    }
    return this;
  }

  doc_close(doctype, docname) {
    this.open_docs.delete(key(doctype, docname));
    this._send("doc_close", doctype, docname);
    return this;
  }

  /** Join task_progress:<task_id> (task_progress and other task events). */
  task_subscribe(task_id) {
    if (!this.tasks.has(task_id)) {
      this.tasks.add(task_id);
      this._send("task_subscribe", task_id);
    }
    return this;
  }

  task_unsubscribe(task_id) {
    this.tasks.delete(task_id);
    this._send("task_unsubscribe", task_id);
    return this;
  }

  /** What is re-requested on every connect. */
  subscriptions() {
    return {
      doctypes: [...this.doctypes],
      docs: [...this.docs.values()],
      open_docs: [...this.open_docs.values()],
      tasks: [...this.tasks],
    };
  }

  /** Connect again after close(), or the first time with autoConnect: false. */
  connect() {
    this._closed = false;
    this.socket.connect();
    return this;
  }

  /** Disconnect for good: no reconnection until connect(). Subscriptions are kept. */
  close() {
    this._closed = true;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this.socket.disconnect();
    return this;
  }
}

/** connect(url, site, options): a started RealtimeClient. */
export function connect(url, site, options = {}) {
  return new RealtimeClient({ ...options, url, site });
}

export default RealtimeClient;
