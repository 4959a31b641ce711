/* Unit tests for src/broker/broker.c's pure part: Redis URL parsing
 * (redis:// and unix://, credentials with the shared percent-decoder). */
#include "broker/broker.h"
#include "test.h"

static int parse(const char *url, broker_url_t *u)
{
    char err[128] = "";
    int rc = broker_url_parse(url, u, err, sizeof err);
    if (rc < 0) CHECK(err[0] != 0); /* every refusal says why */
    return rc;
}

TEST(tcp_urls)
{
    broker_url_t u;
    CHECK_EQ_INT(parse("redis://127.0.0.1:11000", &u), 0);
    CHECK(!strcmp(u.host, "127.0.0.1") && u.port == 11000 && u.db == 0 && !u.password && !u.user);
    broker_url_free(&u);
    CHECK_EQ_INT(parse("redis://h/3", &u), 0);
    CHECK(!strcmp(u.host, "h") && u.port == 6379 && u.db == 3);
    broker_url_free(&u);
    CHECK_EQ_INT(parse("redis://:p%40ss@h:1", &u), 0);
    CHECK(!u.user && !strcmp(u.password, "p@ss") && !strcmp(u.host, "h") && u.port == 1);
    broker_url_free(&u);
    CHECK_EQ_INT(parse("redis://alice:se:cr@t@h:2", &u), 0); /* the last '@' ends the credentials */
    CHECK(!strcmp(u.user, "alice") && !strcmp(u.password, "se:cr@t") && !strcmp(u.host, "h"));
    broker_url_free(&u);
    CHECK_EQ_INT(parse("redis://secret@h", &u), 0); /* a bare password */
    CHECK(!u.user && !strcmp(u.password, "secret"));
    broker_url_free(&u);
    CHECK_EQ_INT(parse("redis://", &u), 0);
    CHECK(!strcmp(u.host, "127.0.0.1") && u.port == 6379);
    broker_url_free(&u);
}

TEST(unix_urls)
{
    broker_url_t u;
    CHECK_EQ_INT(parse("unix:///run/redis.sock?db=2&password=a%2Bb", &u), 0);
    CHECK(!strcmp(u.path, "/run/redis.sock") && u.db == 2 && !strcmp(u.password, "a+b") && !u.host);
    broker_url_free(&u);
    CHECK_EQ_INT(parse("unix://:pw@/tmp/r.sock", &u), 0);
    CHECK(!strcmp(u.path, "/tmp/r.sock") && !strcmp(u.password, "pw"));
    broker_url_free(&u);
}

TEST(bad_urls)
{
    broker_url_t u;
    static const char *bad[] = {
        "http://h:1", "h:1", "redis://h:0", "redis://h:65536", "redis://h:x", "redis://h/x",
        "redis://h/-1", "unix://relative.sock", "unix://", "redis://:p%zz@h", "redis://u%4:p@h",
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        int rc = parse(bad[i], &u);
        if (rc != RT_EPROTO) fprintf(stderr, "  accepted %s\n", bad[i]);
        CHECK_EQ_INT(rc, RT_EPROTO);
        CHECK(!u.host && !u.path && !u.password && !u.user); /* nothing left to free */
    }
}

int main(void)
{
    RUN(tcp_urls);
    RUN(unix_urls);
    RUN(bad_urls);
    return TEST_SUMMARY("test_broker");
}
