/* Glue between app/ and the Frappe application module. */
#ifndef RT_APP_FRAPPE_H
#define RT_APP_FRAPPE_H
#include "app.h"
#include "broker/broker.h"

int frappe_start(app_t *app);
void frappe_app_stop(app_t *app);    /* before the sio server is freed */
void frappe_app_release(app_t *app); /* after it */
void frappe_app_reconfigure(app_t *app); /* SIGHUP: the live settings of app->cfg */
/* Extra checks for --check-config (reachability is not tested). */
int frappe_check_config(const app_config_t *cfg);
/* ---- probe.c ---- */
/* --check-config: the values, that the server could start, and with
 * --probe that Redis and the web server answer. Returns an exit code. */
int app_check_config(const app_config_t *cfg);
int app_bench_check(const app_config_t *cfg); /* EX_CONFIG with a message if cfg->bench has no sites/ */
/* Blocking connection with AUTH (and SELECT db), 2 s timeouts; NULL with err. */
struct redisContext;
struct redisContext *app_redis_open(const broker_url_t *u, bool select_db, char *err, size_t errlen);
/* `realtimed publish ...` */
int app_publish_main(int argc, char **argv);
int app_setup_bench_main(int argc, char **argv); /* `realtimed setup-bench ...` (setup_bench.c) */

#endif
