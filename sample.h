// sample.h: text from a model. Next-token sampling (temperature, top-k) over the real vocabulary (the
// padded logits are never candidates) and autoregressive generation.
// Flow: tokens -> gpt2_forward (no targets) -> last position's logits -> sample_next -> append -> repeat.
#pragma once
#include <string>
#include "data/tokenizer.h"
#include "model.h"

// Picks the next token from logits (V). temperature <= 0 takes the most likely token; top_k > 0 keeps only
// the k most likely before sampling from softmax(logits / temperature).
static int sample_next(const float* logits, int V, float temperature, int top_k, Rng* rng) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (temperature <= 0.0f) return best;
    // the threshold a logit must reach to be among the top k: the k-th largest, found by a short insertion
    float threshold = -INFINITY;
    if (top_k > 0 && top_k < V) {
        float* top = (float*)xmalloc(sizeof(float) * top_k);  // descending
        int count = 0;
        for (int v = 0; v < V; v++) {
            if (count == top_k && logits[v] <= top[count - 1]) continue;
            int i = count < top_k ? count++ : count - 1;
            while (i > 0 && top[i - 1] < logits[v]) {
                top[i] = top[i - 1];
                i--;
            }
            top[i] = logits[v];
        }
        threshold = top[count - 1];
        free(top);
    }
    // softmax over the kept logits, then walk the cumulative sum to a uniform draw
    double sum = 0.0;
    for (int v = 0; v < V; v++)
        if (logits[v] >= threshold) sum += exp((logits[v] - logits[best]) / temperature);
    double r = rng_uniform(rng) * sum, acc = 0.0;
    for (int v = 0; v < V; v++) {
        if (logits[v] < threshold) continue;
        acc += exp((logits[v] - logits[best]) / temperature);
        if (acc > r) return v;
    }
    return best;
}

// Extends tokens[0, n_prompt) to tokens[0, n_total). Each step runs the model on the last (at most the
// model's built T) tokens; evaluation mode, so nothing is recorded for a backward.
static void generate(GPT2* m, int* tokens, int n_prompt, int n_total, float temperature, int top_k, Rng* rng) {
    int V = m->config.vocab_size, Vp = m->config.padded_vocab_size;
    float* row = (float*)xmalloc(sizeof(float) * V);
    bfloat16* row16 = (bfloat16*)xmalloc(sizeof(bfloat16) * V);
    bool recording = m->tape.recording;
    m->tape.recording = false;
    for (int t = n_prompt; t < n_total; t++) {
        int window = t < m->T ? t : m->T;
        gpt2_forward(m, tokens + t - window, NULL, 1, window);
        size_t last = (size_t)(window - 1) * Vp;  // the last position's row, in fp32 or 16-bit storage (model.h)
        if (m->logits.data) {
            copy_to_host(m->device, row, m->logits.data + last, sizeof(float) * V);
        } else {
            copy_to_host(m->device, row16, m->logits.data16 + last, sizeof(bfloat16) * V);
            for (int v = 0; v < V; v++) row[v] = bf16_to_float(row16[v]);
        }
        tokens[t] = sample_next(row, V, temperature, top_k, rng);
    }
    m->tape.recording = recording;
    free(row);
    free(row16);
}

// During training: a short sample from <|endoftext|>, printed as text.
static void print_sample(GPT2* m, const Tokenizer* tok, int n, Rng* rng) {
    int* tokens = (int*)xmalloc(sizeof(int) * (n + 1));
    tokens[0] = GPT2_EOT;
    generate(m, tokens, 1, n + 1, 1.0f, 40, rng);
    std::string text;
    char err[ERR_LEN];
    tokenizer_decode(tok, tokens + 1, n, &text, err);
    printf("sample: %s\n", text.c_str());
    free(tokens);
}
