/* auth: JSON Web Token verification (jwt.h).
 *
 *   token = b64url(header) "." b64url(claims) "." b64url(signature)
 *
 * The header must be a JSON object whose alg names a supported algorithm of
 * the type of a configured key (kid, when present, names that key), with no
 * crit. The signature covers the first two parts as sent. Then the claims:
 * an object with a string sub, numeric exp/nbf checked with the leeway, aud
 * and iss when required. */
#include "jwt.h"

#include <errno.h>
#include <math.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>

typedef enum { KEY_HMAC, KEY_RSA, KEY_EC256, KEY_ED25519 } key_type_t;

typedef struct {
    key_type_t type;
    char *kid;
    uint8_t *secret; /* HMAC */
    size_t len;
    EVP_PKEY *pkey; /* the others */
} jwt_key_t;

struct jwt_keys {
    jwt_key_t *v;
    size_t n;
};

typedef struct {
    const char *name;
    key_type_t type;
    const char *md; /* digest name; NULL for EdDSA */
} alg_t;

static const alg_t algs[] = {
    {"HS256", KEY_HMAC, "SHA256"}, {"HS384", KEY_HMAC, "SHA384"}, {"HS512", KEY_HMAC, "SHA512"},
    {"RS256", KEY_RSA, "SHA256"},  {"RS384", KEY_RSA, "SHA384"},  {"RS512", KEY_RSA, "SHA512"},
    {"ES256", KEY_EC256, "SHA256"}, {"EdDSA", KEY_ED25519, NULL},
};

jwt_keys_t *jwt_keys_new(void) { return rt_calloc(1, sizeof(jwt_keys_t)); }

void jwt_keys_free(jwt_keys_t *ks)
{
    if (!ks) return;
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->v[i].kid);
        if (ks->v[i].secret) OPENSSL_cleanse(ks->v[i].secret, ks->v[i].len);
        free(ks->v[i].secret);
        EVP_PKEY_free(ks->v[i].pkey);
    }
    free(ks->v);
    free(ks);
}

size_t jwt_keys_count(const jwt_keys_t *ks) { return ks ? ks->n : 0; }

int jwt_keys_add(jwt_keys_t *ks, const char *kid, const void *data, size_t len, char *err, size_t errlen)
{
    jwt_key_t k = {0};
    if (len >= 10 && memmem(data, len, "-----BEGIN", 10)) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!pk) {
            snprintf(err, errlen, "not a PEM public key (\"-----BEGIN PUBLIC KEY-----\"; private keys and "
                                  "certificates are not accepted)");
            return -1;
        }
        int id = EVP_PKEY_get_base_id(pk);
        if (id == EVP_PKEY_RSA) {
            if (EVP_PKEY_get_bits(pk) < 2048) {
                snprintf(err, errlen, "an RSA key of %d bits: at least 2048 are required", EVP_PKEY_get_bits(pk));
                EVP_PKEY_free(pk);
                return -1;
            }
            k.type = KEY_RSA;
        } else if (id == EVP_PKEY_EC) {
            char group[64] = "";
            size_t gl = 0;
            if (!EVP_PKEY_get_group_name(pk, group, sizeof group, &gl) ||
                (strcmp(group, "prime256v1") && strcmp(group, "P-256"))) {
                snprintf(err, errlen, "an EC key on %s: only P-256 (ES256) is supported", group[0] ? group : "an unknown curve");
                EVP_PKEY_free(pk);
                return -1;
            }
            k.type = KEY_EC256;
        } else if (id == EVP_PKEY_ED25519) {
            k.type = KEY_ED25519;
        } else {
            snprintf(err, errlen, "a public key of an unsupported type (RSA, EC P-256 or Ed25519 are)");
            EVP_PKEY_free(pk);
            return -1;
        }
        k.pkey = pk;
    } else {
        if (len && ((const char *)data)[len - 1] == '\n') len--; /* one trailing newline: echo > file */
        if (len && ((const char *)data)[len - 1] == '\r') len--;
        if (len == 0) {
            snprintf(err, errlen, "an empty HMAC secret");
            return -1;
        }
        k.type = KEY_HMAC;
        k.secret = rt_malloc(len);
        memcpy(k.secret, data, len);
        k.len = len;
    }
    k.kid = kid ? rt_strndup(kid, strlen(kid)) : NULL;
    ks->v = rt_realloc(ks->v, (ks->n + 1) * sizeof *ks->v);
    ks->v[ks->n++] = k;
    return 0;
}

int jwt_keys_add_file(jwt_keys_t *ks, const char *path, const char *kid, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    if (more) {
        snprintf(err, errlen, "%s: larger than 64 KiB: not a key", path);
        return -1;
    }
    char name[256];
    if (!kid) { /* the base name without its extension */
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        snprintf(name, sizeof name, "%s", b);
        char *dot = strrchr(name, '.');
        if (dot && dot != name) *dot = 0;
        kid = name;
    }
    char e[200];
    int rc = jwt_keys_add(ks, kid, buf, n, e, sizeof e);
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc) snprintf(err, errlen, "%s: %s", path, e);
    return rc;
}

/* ---- verification ---- */
static bool b64url_decode(rt_slice_t in, rt_buf_t *out)
{
    if (in.n == 0) return false;
    char *t = rt_malloc(in.n + 3);
    size_t n = 0;
    for (size_t i = 0; i < in.n; i++) {
        char c = in.p[i];
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            free(t);
            return false; /* no padding, no standard alphabet, nothing else */
        }
        t[n++] = c;
    }
    if (n % 4 == 1) {
        free(t);
        return false;
    }
    while (n % 4) t[n++] = '=';
    out->len = 0;
    rt_buf_reserve(out, n / 4 * 3 + 3);
    ssize_t d = rt_base64_decode((uint8_t *)out->data, t, n);
    free(t);
    if (d < 0) return false;
    out->len = (size_t)d;
    return true;
}

/* A JSON number claim as seconds, or false. */
static bool num_claim(rt_slice_t v, double *out)
{
    if (rt_json_peek(v) != RT_JSON_NUMBER || v.n > 40) return false;
    char tmp[48];
    memcpy(tmp, v.p, v.n);
    tmp[v.n] = 0;
    char *end;
    double d = strtod(tmp, &end);
    if (*end || !isfinite(d)) return false;
    *out = d;
    return true;
}

static bool str_is(rt_slice_t tok, const char *want)
{
    rt_buf_t s = {0};
    bool ok = rt_json_peek(tok) == RT_JSON_STRING && rt_json_string_decode(tok, &s) == 0 &&
              s.len == strlen(want) && !memcmp(s.data, want, s.len);
    rt_buf_free(&s);
    return ok;
}

static bool verify_with(const jwt_key_t *k, const alg_t *a, rt_slice_t signed_part, const rt_buf_t *sig)
{
    if (k->type == KEY_HMAC) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned ml = 0;
        const EVP_MD *md = EVP_get_digestbyname(a->md);
        if (!md || !HMAC(md, k->secret, (int)k->len, (const uint8_t *)signed_part.p, signed_part.n, mac, &ml))
            return false;
        return ml == sig->len && CRYPTO_memcmp(mac, sig->data, ml) == 0;
    }
    const uint8_t *s = (const uint8_t *)sig->data;
    size_t sl = sig->len;
    uint8_t *der = NULL;
    if (k->type == KEY_EC256) { /* JWS: r || s, 32 bytes each; OpenSSL wants DER */
        if (sl != 64) return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(s, 32, NULL), *ss = BN_bin2bn(s + 32, 32, NULL);
        if (!es || !r || !ss || !ECDSA_SIG_set0(es, r, ss)) {
            BN_free(r), BN_free(ss), ECDSA_SIG_free(es);
            return false;
        }
        int dl = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (dl <= 0) return false;
        s = der, sl = (size_t)dl;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = a->md ? EVP_get_digestbyname(a->md) : NULL;
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, k->pkey) == 1 &&
              EVP_DigestVerify(ctx, s, sl, (const uint8_t *)signed_part.p, signed_part.n) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

void jwt_claims_free(jwt_claims_t *c)
{
    rt_buf_free(&c->payload);
    memset(c, 0, sizeof *c);
}

const char *jwt_verify(const jwt_keys_t *ks, rt_slice_t token, int64_t now, const jwt_options_t *o,
                       jwt_claims_t *c)
{
    static const char INVALID[] = "invalid token";
    memset(c, 0, sizeof *c);
    if (!ks || !ks->n || token.n == 0 || token.n > JWT_MAX_TOKEN) return INVALID;
    const char *d1 = memchr(token.p, '.', token.n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(token.p + token.n - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(token.p + token.n - d2 - 1))) return INVALID;
    rt_slice_t h64 = rt_slice(token.p, (size_t)(d1 - token.p));
    rt_slice_t p64 = rt_slice(d1 + 1, (size_t)(d2 - d1 - 1));
    rt_slice_t s64 = rt_slice(d2 + 1, (size_t)(token.p + token.n - d2 - 1));
    rt_buf_t hdr = {0}, sig = {0};
    const char *why = INVALID;
    rt_json_type_t type;
    rt_slice_t alg, kid = RT_SLICE_NULL, crit;
    if (!b64url_decode(h64, &hdr) || !rt_json_valid(rt_slice(hdr.data, hdr.len), &type) || type != RT_JSON_OBJECT)
        goto out;
    rt_slice_t h = rt_slice(hdr.data, hdr.len);
    if (!rt_json_object_get(h, "alg", &alg) || rt_json_object_get(h, "crit", &crit)) goto out;
    const alg_t *a = NULL;
    for (size_t i = 0; i < RT_ARRAY_LEN(algs) && !a; i++)
        if (str_is(alg, algs[i].name)) a = &algs[i]; /* "none" is not among them */
    if (!a) goto out;
    bool has_kid = rt_json_object_get(h, "kid", &kid);
    rt_buf_t kidv = {0};
    if (has_kid && (rt_json_peek(kid) != RT_JSON_STRING || rt_json_string_decode(kid, &kidv) < 0)) {
        rt_buf_free(&kidv);
        goto out;
    }
    if (!b64url_decode(s64, &sig)) {
        rt_buf_free(&kidv);
        goto out;
    }
    rt_slice_t signed_part = rt_slice(token.p, (size_t)(d2 - token.p));
    bool verified = false;
    for (size_t i = 0; i < ks->n && !verified; i++) {
        const jwt_key_t *k = &ks->v[i];
        if (k->type != a->type) continue;
        if (has_kid && (!k->kid || strlen(k->kid) != kidv.len || memcmp(k->kid, kidv.data, kidv.len))) continue;
        verified = verify_with(k, a, signed_part, &sig);
    }
    rt_buf_free(&kidv);
    if (!verified) goto out;
    /* signed: now the claims */
    if (!b64url_decode(p64, &c->payload) || !rt_json_valid(rt_slice(c->payload.data, c->payload.len), &type) ||
        type != RT_JSON_OBJECT)
        goto out;
    rt_slice_t pl = rt_slice(c->payload.data, c->payload.len), v;
    double t;
    if (rt_json_object_get(pl, "exp", &v)) {
        if (!num_claim(v, &t)) goto out;
        if ((double)now >= t + (double)o->leeway) {
            why = "token expired";
            goto out;
        }
        c->has_exp = true;
        c->exp = t > 9e15 ? INT64_MAX / 2 : (int64_t)floor(t);
    }
    if (rt_json_object_get(pl, "nbf", &v)) {
        if (!num_claim(v, &t)) goto out;
        if ((double)now + (double)o->leeway < t) {
            why = "token not yet valid";
            goto out;
        }
    }
    if (o->audience) {
        bool ok = false;
        if (rt_json_object_get(pl, "aud", &v)) {
            if (rt_json_peek(v) == RT_JSON_ARRAY) {
                rt_json_iter_t it;
                rt_slice_t e;
                rt_json_iter_init(&it, v);
                while (!ok && rt_json_array_next(&it, &e)) ok = str_is(e, o->audience);
            } else {
                ok = str_is(v, o->audience);
            }
        }
        if (!ok) {
            why = "invalid audience";
            goto out;
        }
    }
    if (o->issuer && !(rt_json_object_get(pl, "iss", &v) && str_is(v, o->issuer))) {
        why = "invalid issuer";
        goto out;
    }
    if (!rt_json_object_get(pl, "sub", &c->sub) || rt_json_peek(c->sub) != RT_JSON_STRING || c->sub.n <= 2) {
        why = "token has no sub";
        goto out;
    }
    if (rt_json_object_get(pl, "rooms", &v)) {
        if (rt_json_peek(v) != RT_JSON_ARRAY) goto out;
        c->rooms = v;
    }
    if (rt_json_object_get(pl, "info", &v)) c->info = v;
    why = NULL;
out:
    rt_buf_free(&hdr);
    rt_buf_free(&sig);
    if (why) jwt_claims_free(c);
    return why;
}
