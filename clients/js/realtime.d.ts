// Type declarations for realtimed-client (realtime.js).
import type { Socket, ManagerOptions, SocketOptions } from "socket.io-client";

export interface RealtimeOptions extends Partial<ManagerOptions & SocketOptions> {
  /** Server origin, e.g. "http://127.0.0.1:9000"; default: the page's origin (browsers only). */
  url?: string;
  /** The Frappe site: the client joins namespace "/<site>". */
  site?: string;
  /** Retry with backoff when the server refuses the connection or disconnects the socket (default true). */
  retryRefused?: boolean;
  /** The standalone mode's token (realtimed --auth-mode jwt), asked for before every (re)connect. */
  token?: () => string | Promise<string>;
}

export interface Subscriptions {
  doctypes: string[];
  docs: [string, string][];
  open_docs: [string, string][];
  tasks: string[];
}

export declare class RealtimeClient {
  constructor(options?: RealtimeOptions);
  readonly socket: Socket;
  readonly url: string;
  readonly site?: string;
  /** Successful namespace connects so far. */
  readonly connects: number;
  /** True while the namespace is connected. */
  readonly connected: boolean;
  on(event: string, callback: (...args: any[]) => void): this;
  once(event: string, callback: (...args: any[]) => void): this;
  off(event?: string, callback?: (...args: any[]) => void): this;
  emit(event: string, ...args: any[]): this;
  publish(event: string, message: unknown): this;
  doctype_subscribe(doctype: string): this;
  doctype_unsubscribe(doctype: string): this;
  doc_subscribe(doctype: string, docname: string): this;
  doc_unsubscribe(doctype: string, docname: string): this;
  doc_open(doctype: string, docname: string): this;
  doc_close(doctype: string, docname: string): this;
  task_subscribe(task_id: string): this;
  task_unsubscribe(task_id: string): this;
  subscriptions(): Subscriptions;
  connect(): this;
  close(): this;
}

export declare function connect(url: string, site?: string, options?: RealtimeOptions): RealtimeClient;
export default RealtimeClient;
