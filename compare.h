// compare.h: the comparison that is muongpt's main job: several optimizers trained from the same initial
// weights on the same data order with the same budget and schedule shape, each at its own learning rate.
// Flow: RunConfig + a list of optimizers -> run_training for each -> table (Markdown, CSV) and plots.
#pragma once
#include "trainer.h"

static int compare_main(const RunConfig* rc, Device dev) {
    char list[256];
    snprintf(list, sizeof(list), "%s", rc->optimizers);
    char err[ERR_LEN];
    for (char* name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        OptimizerConfig oc;
        if (optimizer_config_from_run(rc, name, &oc, err)) die("%s", err);
        RunConfig one = *rc;
        snprintf(one.run_name, sizeof(one.run_name), "%s", name);
        RunResult res;
        if (run_training(&one, &oc, dev, &res, err)) die("%s", err);
    }
    return 0;
}
