// dev/bench_dist.cpp: `make bench`'s data-parallel line, run under `mpirun -np 2`: one optimizer step of the default
// CPU model (d4) as one rank takes it (every matrix, all of AdamW's moments) and as each of 2 ranks takes it (its
// share of Muon's matrices and of AdamW's moments, then the all-gather of the updated parameters: partition.h),
// side by side in one run. Each rank runs one thread on its own core, so the two columns are the same work
// measured the same way; the gradients are random and the same on every rank. Median of the timed steps.
#include <algorithm>
#include <vector>
#include "../optim.h"

struct Timing {
    double step;     // ms, the whole optimizer step: norm, clip, this rank's share, the gather
    double matrices; // ms, of which the Muon family on this rank's matrices (the work the ranks divide)
};

// the ranks' timings side by side: out[r] = rank r's value (the step waits for the slowest)
static double slowest(double mine) {
    std::vector<double> all(dist.ranks, 0.0);
    all[dist.rank] = mine;
    dist_sum_doubles(all.data(), dist.ranks);
    return *std::max_element(all.begin(), all.end());
}

// the median over `steps` optimizer steps of `name`, split among `ranks` (1: this rank does all of it alone)
static Timing step_ms(const char* name, int ranks, int steps) {
    GPT2Config cfg;
    char err[ERR_LEN];
    if (gpt2_config_preset(&cfg, "d4", err)) die("%s", err);
    GPT2 model;
    gpt2_build(&model, &cfg, 1, 64, DEV_CPU, 1);
    Rng rng = rng_make(7);
    for (size_t i = 0; i < model.num_parameters; i++) model.params[0].grad[i] = (float)(1e-3 * rng_normal(&rng));
    OptimizerConfig oc;
    if (optimizer_config_by_name(name, &oc, err)) die("%s", err);
    Optimizer opt;
    if (optimizer_init(&opt, &model, &oc, err, ranks == 1 ? 0 : dist.rank, ranks)) die("%s", err);
    std::vector<double> whole, matrices;
    const Partition* part = &opt.part;
    for (int s = 0; s < steps + 2; s++) {  // two steps to warm the caches and the allocations
        dist_broadcast(&s, sizeof(s));      // the ranks start each step together
        double t0 = now_seconds();
        optimizer_step(&opt, &model, 1.0f, false);
        double t1 = now_seconds();
        MuonHyper h = muon_hyper(&oc, oc.lr, oc.lr, opt.t);  // the matrix part again, alone (the step is repeatable)
        for (int k = part->first[part->rank]; k < part->first[part->rank + 1]; k++)
            if (opt.use_matrix_method[part->pieces[k].slot])
                matrix_method_step(&opt, &part->pieces[k], model.params[0].data, model.params[0].grad, &h);
        double t2 = now_seconds();
        if (s >= 2) {
            whole.push_back(1e3 * (t1 - t0));
            matrices.push_back(1e3 * (t2 - t1));
        }
    }
    optimizer_free(&opt);
    gpt2_free(&model);
    std::sort(whole.begin(), whole.end());
    std::sort(matrices.begin(), matrices.end());
    return Timing{slowest(whole[whole.size() / 2]), slowest(matrices[matrices.size() / 2])};
}

int main(int argc, char** argv) {
    dist_init(&argc, &argv);
    if (dist.ranks != 2) die("dev/bench_dist: run it with mpirun -np 2 (make bench does)");
    omp_set_num_threads(1);
    const int steps = 10;
    printf("optimizer step of d4 (7.27M parameters, 0.79M of them in 16 hidden matrices), ms, median of %d steps,\n"
           "one thread per rank, the slower rank's time:\n", steps);
    printf("  %-38s %9s %9s %7s\n", "", "1 rank", "2 ranks", "ratio");
    for (const char* name : {"muon", "normuon", "adamw"}) {
        Timing one = step_ms(name, 1, steps), two = step_ms(name, 2, steps);
        char label[64];
        if (strcmp(name, "adamw") != 0) {
            snprintf(label, sizeof(label), "%s: the hidden matrices' update", name);
            printf("  %-38s %9.1f %9.1f %6.2fx\n", label, one.matrices, two.matrices, two.matrices / one.matrices);
        }
        snprintf(label, sizeof(label), "%s: the whole optimizer step", name);
        printf("  %-38s %9.1f %9.1f %6.2fx\n", label, one.step, two.step, two.step / one.step);
    }
    printf("(2 ranks: each orthogonalizes its own matrices, dealt by Newton-Schulz cost, and keeps half of AdamW's\n"
           " moments; the whole step adds what every rank does in full: the gradient norm and clipping over all\n"
           " parameters, and the gather of the updated parameters)\n");
    dist_finalize();
    return 0;
}
