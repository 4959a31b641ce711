/* Fuzz target for JWT verification. The input is a token (after a first
 * byte that picks the options); it is checked against an HMAC key and an
 * Ed25519 key. Checks memory safety, that a verdict is one of the documented
 * messages, that a valid token's claims are slices of its payload with a
 * string sub, and that verifying twice gives the same verdict. Any token
 * the fuzzer makes valid must carry a real HMAC-SHA signature with key "k",
 * which it cannot forge: valid outcomes only come from the seeds. */
#include "auth/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static jwt_keys_t *keys;

static void setup(void)
{
    if (keys) return;
    keys = jwt_keys_new();
    char err[256];
    rt_assert(jwt_keys_add(keys, "k", "k", 1, err, sizeof err) == 0);
    static const char ed[] = "-----BEGIN PUBLIC KEY-----\n"
                             "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
                             "-----END PUBLIC KEY-----\n";
    rt_assert(jwt_keys_add(keys, "e", ed, sizeof ed - 1, err, sizeof err) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size == 0) return 0;
    jwt_options_t o = {data[0] & 1 ? 30 : 0, data[0] & 2 ? "app" : NULL, data[0] & 4 ? "iss" : NULL};
    rt_slice_t tok = rt_slice((const char *)data + 1, size - 1);
    static const char *const known[] = {"invalid token", "token expired", "token not yet valid",
                                        "token has no sub", "invalid audience", "invalid issuer"};
    jwt_claims_t c, c2;
    const char *why = jwt_verify(keys, tok, 1800000000, &o, &c);
    const char *why2 = jwt_verify(keys, tok, 1800000000, &o, &c2);
    rt_assert(why == why2 || (why && why2 && !strcmp(why, why2)));
    if (why) {
        bool ok = false;
        for (size_t i = 0; i < RT_ARRAY_LEN(known); i++) ok |= !strcmp(why, known[i]);
        rt_assert(ok);
        rt_assert(c.payload.data == NULL);
    } else {
        rt_assert(c.sub.n > 2 && c.sub.p >= c.payload.data && c.sub.p + c.sub.n <= c.payload.data + c.payload.len);
        rt_assert(rt_json_peek(c.sub) == RT_JSON_STRING);
        if (c.rooms.n) rt_assert(rt_json_peek(c.rooms) == RT_JSON_ARRAY);
    }
    jwt_claims_free(&c);
    jwt_claims_free(&c2);
    return 0;
}
