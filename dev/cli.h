// dev/cli.h: the command line of the dev programs (dev/experiments.cpp, dev/study.cpp): one table gives each
// flag, where its value goes, its range and its --help text. ./train has its own, richer table (settings.h).
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include "../common.h"

enum DevFlagType { DEV_INT, DEV_DOUBLE, DEV_STRING };

struct DevFlag {
    const char* name;
    DevFlagType type;
    void* value;        // int*, double* or std::string*
    double lo, hi;      // range of a number
    const char* help;
};

static void dev_usage(const char* program, const DevFlag* flags, int n) {
    printf("usage: %s [flags]\n", program);
    for (int i = 0; i < n; i++) {
        char def[64];
        if (flags[i].type == DEV_INT) snprintf(def, sizeof(def), "%d", *(int*)flags[i].value);
        else if (flags[i].type == DEV_DOUBLE) snprintf(def, sizeof(def), "%g", *(double*)flags[i].value);
        else snprintf(def, sizeof(def), "%s", ((std::string*)flags[i].value)->c_str());
        printf("  %-20s %-18s %s\n", flags[i].name, def[0] ? def : "\"\"", flags[i].help);
    }
}

// Fills the flags' values from argv (--help prints the table and exits 0). 0, or -1 naming the bad flag.
static int dev_parse(const char* program, int argc, char** argv, const DevFlag* flags, int n, char* err) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            dev_usage(program, flags, n);
            exit(0);
        }
        int f = 0;
        while (f < n && strcmp(argv[i], flags[f].name)) f++;
        if (f == n) return fail(err, "unknown flag %s (see --help)", argv[i]);
        if (i + 1 >= argc) return fail(err, "flag %s needs a value", argv[i]);
        const char* v = argv[++i];
        if (flags[f].type == DEV_STRING) {
            *(std::string*)flags[f].value = v;
            continue;
        }
        char* end;
        double x = strtod(v, &end);
        bool integral = flags[f].type == DEV_DOUBLE || x == (double)(long long)x;
        if (*end || end == v || !integral || !(x >= flags[f].lo && x <= flags[f].hi))
            return fail(err, "flag %s: '%s' is not %s in [%g, %g]", flags[f].name, v,
                        flags[f].type == DEV_INT ? "an integer" : "a number", flags[f].lo, flags[f].hi);
        if (flags[f].type == DEV_INT) *(int*)flags[f].value = (int)x;
        else *(double*)flags[f].value = x;
    }
    return 0;
}
