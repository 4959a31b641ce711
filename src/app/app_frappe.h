/* Glue between app/ and the Frappe application module. */
#ifndef RT_APP_FRAPPE_H
#define RT_APP_FRAPPE_H
#include "app.h"

int frappe_start(app_t *app);
void frappe_app_stop(app_t *app);    /* before the sio server is freed */
void frappe_app_release(app_t *app); /* after it */
void frappe_app_reconfigure(app_t *app); /* SIGHUP: the live settings of app->cfg */
/* Extra checks for --check-config (reachability is not tested). */
int frappe_check_config(const app_config_t *cfg);
/* `realtimed publish ...` */
int app_publish_main(int argc, char **argv);
int app_setup_bench_main(int argc, char **argv); /* `realtimed setup-bench ...` (setup_bench.c) */

#endif
