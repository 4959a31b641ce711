/* Temporary: the Frappe application lands with its own module. */
#include "app_frappe.h"

int frappe_start(app_t *app)
{
    RT_UNUSED(app);
    fprintf(stderr, "realtimed: Frappe mode is not built yet; use --conformance\n");
    return 70;
}
void frappe_stop(app_t *app) { RT_UNUSED(app); }
int frappe_check_config(const app_config_t *cfg)
{
    RT_UNUSED(cfg);
    return 0;
}
int app_publish_main(int argc, char **argv)
{
    RT_UNUSED(argc), RT_UNUSED(argv);
    fprintf(stderr, "realtimed publish: not built yet\n");
    return 70;
}
