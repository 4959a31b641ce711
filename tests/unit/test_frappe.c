/* Unit tests for the pure helpers of src/frappe/frappe.c: the hostname rule
 * of site resolution, the sid cookie, and which Origins may receive the
 * auth backchannel's credentials. */
#include "frappe/frappe.h"
#include "test.h"

#define S(lit) RT_SLICE(lit)

TEST(hostname)
{
    CHECK_SLICE(frappe_hostname(S("http://site1.local:8000/x")), "site1.local");
    CHECK_SLICE(frappe_hostname(S("https://site1.local")), "site1.local");
    CHECK_SLICE(frappe_hostname(S("site1.local:8000")), "site1.local");
    CHECK_SLICE(frappe_hostname(S("site1.local")), "site1.local");
    CHECK_SLICE(frappe_hostname(S("http://")), "");
    /* an absent header is a NULL slice: no pointer arithmetic on it */
    rt_slice_t h = frappe_hostname(RT_SLICE_NULL);
    CHECK(h.p != NULL && h.n == 0);
    CHECK_SLICE(frappe_hostname(S("")), "");
}

TEST(cookie)
{
    rt_buf_t b = {0};
    CHECK(frappe_cookie_get(S("a=1; sid=abc; b=2"), "sid", &b));
    CHECK_MEM(b.data, b.len, "abc");
    CHECK(frappe_cookie_get(S("sid=\"q%20r\""), "sid", &b));
    CHECK_MEM(b.data, b.len, "q r");
    CHECK(!frappe_cookie_get(S("sids=1; xsid=2"), "sid", &b));
    CHECK(!frappe_cookie_get(S(""), "sid", &b));
    rt_buf_free(&b);
}

TEST(site_origin)
{
    rt_slice_t host;
    CHECK(frappe_site_origin(S("https://site1.local"), &host));
    CHECK_SLICE(host, "site1.local");
    CHECK(frappe_site_origin(S("http://erp.example.com:8000"), &host));
    CHECK_SLICE(host, "erp.example.com");
    CHECK(frappe_site_origin(S("http://my_site-2:1"), &host));
    /* what must never carry the secret anywhere but where it says */
    static const char *bad[] = {
        "http://attacker:9999/path", "http://site1.local@attacker:80", "http://site1.local/",
        "http://site1.local?x", "http://site1.local#f", "ftp://site1.local", "site1.local",
        "http://", "http://:80", "http://..", "http://../x", "http://a..b", "http://.hidden",
        "http://site.", "http://site1.local:", "http://site1.local:123456", "http://site1.local:8o",
        "http://[::1]:80", "http://si te", "http://site1.local:80:81", "javascript:alert(1)",
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        bool ok = frappe_site_origin(rt_slice_cstr(bad[i]), &host);
        if (ok) fprintf(stderr, "  accepted %s\n", bad[i]);
        CHECK(!ok);
    }
    char longname[300] = "http://";
    memset(longname + 7, 'a', 260);
    longname[267] = 0;
    CHECK(!frappe_site_origin(rt_slice_cstr(longname), &host));
}

int main(void)
{
    RUN(hostname);
    RUN(cookie);
    RUN(site_origin);
    return TEST_SUMMARY("test_frappe");
}
