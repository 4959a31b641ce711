/* auth: JSON Web Tokens (RFC 7519, JWS compact form) for the standalone
 * mode's connection tokens. Verification is pure (bytes and a clock in, a
 * verdict out); keys come from files: an HMAC secret (HS256/384/512) or a
 * PEM public key (RSA >= 2048 bits: RS256/384/512; EC P-256: ES256;
 * Ed25519: EdDSA). A token's alg must match its key's type: a PEM file is
 * never an HMAC secret, so an HS256 token "signed" with a public key's text
 * is refused (no algorithm confusion); "none" and any "crit" are refused. */
#ifndef RT_JWT_H
#define RT_JWT_H
#include "base/base.h"

typedef struct jwt_keys jwt_keys_t;

jwt_keys_t *jwt_keys_new(void);
void jwt_keys_free(jwt_keys_t *ks);
/* Adds the key in file path, named kid (NULL: the file's base name without
 * its extension). Returns 0, or -1 with a message in err. */
int jwt_keys_add_file(jwt_keys_t *ks, const char *path, const char *kid, char *err, size_t errlen);
/* The same from bytes (tests, fuzzing). */
int jwt_keys_add(jwt_keys_t *ks, const char *kid, const void *data, size_t len, char *err, size_t errlen);
size_t jwt_keys_count(const jwt_keys_t *ks);

typedef struct {
    int64_t leeway;       /* seconds of tolerance on exp and nbf (30) */
    const char *audience; /* required aud (a string or one of an array), or NULL */
    const char *issuer;   /* required iss, or NULL */
} jwt_options_t;

#define JWT_MAX_TOKEN 16384

/* What a valid token says; slices point into payload (owned). */
typedef struct {
    rt_buf_t payload; /* the decoded claims object */
    rt_slice_t sub;   /* raw JSON string token */
    bool has_exp;
    int64_t exp;      /* seconds since the epoch */
    rt_slice_t rooms; /* raw JSON array, or empty */
    rt_slice_t info;  /* raw JSON value, or empty */
} jwt_claims_t;
void jwt_claims_free(jwt_claims_t *c);

/* Verifies token at time now (seconds since the epoch). NULL when valid
 * (claims filled), else a short message that reveals nothing of the keys:
 * "invalid token", "token expired", "token not yet valid", "token has no
 * sub", "invalid audience", "invalid issuer". claims is cleared either way
 * (free it with jwt_claims_free). */
const char *jwt_verify(const jwt_keys_t *ks, rt_slice_t token, int64_t now, const jwt_options_t *o,
                       jwt_claims_t *claims);

#endif
