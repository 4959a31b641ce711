/* JWT verification: tokens signed here (HMAC, and RSA, EC P-256, Ed25519
 * keys generated at run time), then every way a token must be refused. */
#include "auth/jwt.h"
#include "test.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

static void b64url(rt_buf_t *out, const void *p, size_t n)
{
    size_t at = out->len;
    rt_buf_reserve(out, n * 4 / 3 + 4);
    out->len = at + rt_base64url(out->data + at, p, n);
}

/* header.payload, then the signature by sign() */
typedef size_t (*sign_fn)(const void *key, const char *alg, const uint8_t *msg, size_t n, uint8_t *sig);

static char *make(const char *header, const char *payload, sign_fn sign, const void *key, const char *alg)
{
    rt_buf_t t = {0};
    b64url(&t, header, strlen(header));
    rt_buf_putc(&t, '.');
    b64url(&t, payload, strlen(payload));
    uint8_t sig[1024];
    size_t sl = sign(key, alg, (const uint8_t *)t.data, t.len, sig);
    rt_buf_putc(&t, '.');
    b64url(&t, sig, sl);
    rt_buf_putc(&t, 0);
    return t.data;
}

static const EVP_MD *md_of(const char *alg)
{
    return strstr(alg, "384") ? EVP_sha384() : strstr(alg, "512") ? EVP_sha512() : EVP_sha256();
}

static size_t sign_hmac(const void *key, const char *alg, const uint8_t *msg, size_t n, uint8_t *sig)
{
    unsigned l = 0;
    HMAC(md_of(alg), key, (int)strlen(key), msg, n, sig, &l);
    return l;
}

static size_t sign_pkey(const void *key, const char *alg, const uint8_t *msg, size_t n, uint8_t *sig)
{
    EVP_PKEY *pk = (EVP_PKEY *)key;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    size_t sl = 1024;
    uint8_t der[256];
    bool ec = !strcmp(alg, "ES256");
    EVP_DigestSignInit(c, NULL, strcmp(alg, "EdDSA") ? md_of(alg) : NULL, NULL, pk);
    if (ec) sl = sizeof der;
    EVP_DigestSign(c, ec ? der : sig, &sl, msg, n);
    EVP_MD_CTX_free(c);
    if (!ec) return sl;
    const uint8_t *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, sig, 32);
    BN_bn2binpad(s, sig + 32, 32);
    ECDSA_SIG_free(es);
    return 64;
}

static char *pem_of(EVP_PKEY *pk)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, pk);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = rt_strndup(p, (size_t)n);
    BIO_free(b);
    return out;
}

static const jwt_options_t OPT = {30, NULL, NULL};
#define NOW 1800000000

static const char *check(const jwt_keys_t *ks, const char *tok, const jwt_options_t *o)
{
    jwt_claims_t c;
    const char *why = jwt_verify(ks, rt_slice_cstr(tok), NOW, o ? o : &OPT, &c);
    jwt_claims_free(&c);
    return why;
}

TEST(hmac_and_claims)
{
    jwt_keys_t *ks = jwt_keys_new();
    char err[256];
    CHECK(jwt_keys_add(ks, "k1", "secret-one\n", 11, err, sizeof err) == 0); /* the newline is dropped */
    char *t = make("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                   "{\"sub\":\"alice\",\"exp\":1800000100,\"rooms\":[\"a\",\"b\"],\"info\":{\"n\":1}}", sign_hmac,
                   "secret-one", "HS256");
    jwt_claims_t c;
    CHECK(jwt_verify(ks, rt_slice_cstr(t), NOW, &OPT, &c) == NULL);
    CHECK_MEM(c.sub.p, c.sub.n, "\"alice\"");
    CHECK(c.has_exp && c.exp == 1800000100);
    CHECK_MEM(c.rooms.p, c.rooms.n, "[\"a\",\"b\"]");
    CHECK_MEM(c.info.p, c.info.n, "{\"n\":1}");
    jwt_claims_free(&c);
    free(t);
    t = make("{\"alg\":\"HS512\"}", "{\"sub\":\"a\"}", sign_hmac, "secret-one", "HS512");
    CHECK(check(ks, t, NULL) == NULL);
    free(t);
    /* wrong secret, tampered payload, truncated signature */
    t = make("{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", sign_hmac, "secret-two", "HS256");
    CHECK(!strcmp(check(ks, t, NULL), "invalid token"));
    free(t);
    t = make("{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", sign_hmac, "secret-one", "HS256");
    char *dot = strrchr(t, '.');
    dot[3] ^= 1;
    CHECK(!strcmp(check(ks, t, NULL), "invalid token"));
    dot[3] ^= 1;
    dot[1] = 0;
    CHECK(!strcmp(check(ks, t, NULL), "invalid token"));
    free(t);
    jwt_keys_free(ks);
}

TEST(time_and_audience)
{
    jwt_keys_t *ks = jwt_keys_new();
    char err[256];
    jwt_keys_add(ks, NULL, "s", 1, err, sizeof err);
    struct {
        const char *payload, *want;
    } cases[] = {
        {"{\"sub\":\"a\",\"exp\":1799999980}", NULL},              /* within the leeway */
        {"{\"sub\":\"a\",\"exp\":1799999970}", "token expired"},   /* exp + leeway == now */
        {"{\"sub\":\"a\",\"exp\":1799999000.5}", "token expired"},
        {"{\"sub\":\"a\",\"nbf\":1800000020}", NULL},
        {"{\"sub\":\"a\",\"nbf\":1800000031}", "token not yet valid"},
        {"{\"sub\":\"a\",\"exp\":\"soon\"}", "invalid token"},
        {"{\"sub\":\"a\",\"exp\":1e999}", "invalid token"},
        {"{\"sub\":\"\"}", "token has no sub"},
        {"{\"sub\":42}", "token has no sub"},
        {"{\"name\":\"a\"}", "token has no sub"},
        {"[\"sub\"]", "invalid token"},
        {"{\"sub\":\"a\",\"rooms\":\"r\"}", "invalid token"},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
        char *t = make("{\"alg\":\"HS256\"}", cases[i].payload, sign_hmac, "s", "HS256");
        const char *why = check(ks, t, NULL);
        if (!(cases[i].want ? why && !strcmp(why, cases[i].want) : !why))
            fprintf(stderr, "  case %zu: %s -> %s\n", i, cases[i].payload, why ? why : "valid");
        CHECK(cases[i].want ? why && !strcmp(why, cases[i].want) : !why);
        free(t);
    }
    jwt_options_t o = {30, "app", "https://issuer"};
    char *t = make("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"aud\":[\"x\",\"app\"],\"iss\":\"https://issuer\"}", sign_hmac,
                   "s", "HS256");
    CHECK(check(ks, t, &o) == NULL);
    free(t);
    t = make("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"aud\":\"other\",\"iss\":\"https://issuer\"}", sign_hmac, "s", "HS256");
    CHECK(!strcmp(check(ks, t, &o), "invalid audience"));
    free(t);
    t = make("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"aud\":\"app\"}", sign_hmac, "s", "HS256");
    CHECK(!strcmp(check(ks, t, &o), "invalid issuer"));
    free(t);
    jwt_keys_free(ks);
}

TEST(refused_headers)
{
    jwt_keys_t *ks = jwt_keys_new();
    char err[256];
    jwt_keys_add(ks, "only", "s", 1, err, sizeof err);
    const char *headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "{\"alg\":\"hs256\"}",
                             "{\"typ\":\"JWT\"}", "{\"alg\":\"HS256\",\"kid\":\"other\"}", "{\"alg\":\"HS256\",\"kid\":7}",
                             "\"HS256\"", "{\"alg\":\"RS256\"}"};
    for (size_t i = 0; i < RT_ARRAY_LEN(headers); i++) {
        char *t = make(headers[i], "{\"sub\":\"a\"}", sign_hmac, "s", "HS256");
        const char *why = check(ks, t, NULL);
        CHECK(why && !strcmp(why, "invalid token"));
        free(t);
    }
    char *t = make("{\"alg\":\"HS256\",\"kid\":\"only\"}", "{\"sub\":\"a\"}", sign_hmac, "s", "HS256");
    CHECK(check(ks, t, NULL) == NULL);
    free(t);
    /* "none" with an empty signature, garbage, padding, too long */
    const char *bad[] = {"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", "a.b.c", "...", "a.b", "a.b.c.d", "",
                         "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0=.AAAA"};
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) CHECK(!strcmp(check(ks, bad[i], NULL), "invalid token"));
    char *huge = rt_malloc(JWT_MAX_TOKEN + 2);
    memset(huge, 'A', JWT_MAX_TOKEN + 1);
    huge[10] = '.', huge[20] = '.';
    huge[JWT_MAX_TOKEN + 1] = 0;
    CHECK(!strcmp(check(ks, huge, NULL), "invalid token"));
    free(huge);
    jwt_keys_free(ks);
}

TEST(public_keys_and_confusion)
{
    char err[256];
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    char *rsa_pem = pem_of(rsa), *ec_pem = pem_of(ec), *ed_pem = pem_of(ed);
    jwt_keys_t *ks = jwt_keys_new();
    CHECK(jwt_keys_add(ks, "r", rsa_pem, strlen(rsa_pem), err, sizeof err) == 0);
    CHECK(jwt_keys_add(ks, "e", ec_pem, strlen(ec_pem), err, sizeof err) == 0);
    CHECK(jwt_keys_add(ks, "d", ed_pem, strlen(ed_pem), err, sizeof err) == 0);
    char *sp = pem_of(small), *pp = pem_of(p384);
    CHECK(jwt_keys_add(ks, "s", sp, strlen(sp), err, sizeof err) < 0 && strstr(err, "2048"));
    CHECK(jwt_keys_add(ks, "p", pp, strlen(pp), err, sizeof err) < 0 && strstr(err, "P-256"));
    CHECK(jwt_keys_add(ks, "x", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 57, err, sizeof err) < 0);
    free(sp), free(pp);
    struct {
        const char *alg;
        EVP_PKEY *k;
    } ok[] = {{"RS256", rsa}, {"RS384", rsa}, {"RS512", rsa}, {"ES256", ec}, {"EdDSA", ed}};
    for (size_t i = 0; i < RT_ARRAY_LEN(ok); i++) {
        char h[64];
        snprintf(h, sizeof h, "{\"alg\":\"%s\"}", ok[i].alg);
        char *t = make(h, "{\"sub\":\"bob\"}", sign_pkey, ok[i].k, ok[i].alg);
        const char *why = check(ks, t, NULL);
        if (why) fprintf(stderr, "  %s: %s\n", ok[i].alg, why);
        CHECK(why == NULL);
        /* an ES256 token checked against the wrong curve key type is refused */
        free(t);
    }
    /* the classic confusion: HS256 "signed" with the RSA public key's PEM text */
    char *t = make("{\"alg\":\"HS256\"}", "{\"sub\":\"mallory\"}", sign_hmac, rsa_pem, "HS256");
    CHECK(!strcmp(check(ks, t, NULL), "invalid token"));
    free(t);
    /* RS256 header, signed by the EC key */
    t = make("{\"alg\":\"ES256\"}", "{\"sub\":\"x\"}", sign_pkey, ec, "ES256");
    char *p = strchr(t, '.');
    rt_buf_t h2 = {0};
    b64url(&h2, "{\"alg\":\"RS256\"}", 15);
    rt_buf_append_cstr(&h2, p);
    rt_buf_putc(&h2, 0);
    CHECK(!strcmp(check(ks, h2.data, NULL), "invalid token"));
    rt_buf_free(&h2);
    free(t);
    jwt_keys_free(ks);
    free(rsa_pem), free(ec_pem), free(ed_pem);
    EVP_PKEY_free(rsa), EVP_PKEY_free(ec), EVP_PKEY_free(ed), EVP_PKEY_free(small), EVP_PKEY_free(p384);
}

int main(void)
{
    RUN(hmac_and_claims);
    RUN(time_and_audience);
    RUN(refused_headers);
    RUN(public_keys_and_confusion);
    return TEST_SUMMARY("test_jwt");
}
