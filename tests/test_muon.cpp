// tests/test_muon.cpp: the fp64 math of muon.h, checked against an SVD, against torch.optim.Muon
// (tests/fixtures/muon_steps.bin, written by dev/gen_muon_fixture.py), against independent loops, and on
// matrices whose answers are known. Flow: the optimizer step (muon_update) and what we log about it.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "muon.h"
#include "tests/fixture.h"

typedef std::vector<double> Mat;

static Mat random_matrix(Rng* rng, int rows, int cols) {
    Mat m((size_t)rows * cols);
    for (double& x : m) x = rng_normal(rng);
    return m;
}

static Mat transpose(const Mat& A, int rows, int cols) {
    Mat t(A.size());
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) t[(size_t)j * rows + i] = A[(size_t)i * cols + j];
    return t;
}

// U diag(S) Vᵀ with U (rows, k), V (cols, k)
static Mat compose(const Mat& U, const Mat& S, const Mat& V, int rows, int cols) {
    int k = (int)S.size();
    Mat A((size_t)rows * cols, 0.0);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            for (int q = 0; q < k; q++)
                A[(size_t)i * cols + j] += U[(size_t)i * k + q] * S[q] * V[(size_t)j * k + q];
    return A;
}

struct Svd { Mat U, S, V; };
static Svd svd_of(const Mat& A, int rows, int cols) {
    int k = rows < cols ? rows : cols;
    Svd r{Mat((size_t)rows * k), Mat(k), Mat((size_t)cols * k)};
    Mat work(muon_work_doubles(rows, cols));
    svd_jacobi(A.data(), rows, cols, r.U.data(), r.S.data(), r.V.data(), work.data());
    return r;
}

// a (rows, cols) matrix with the given singular values and random singular vectors
static Mat with_spectrum(Rng* rng, int rows, int cols, const Mat& S) {
    Svd a = svd_of(random_matrix(rng, rows, cols), rows, cols);
    return compose(a.U, S, a.V, rows, cols);
}

static double frob_diff(const Mat& A, const Mat& B) {
    double s = 0.0;
    for (size_t i = 0; i < A.size(); i++) s += (A[i] - B[i]) * (A[i] - B[i]);
    return sqrt(s);
}
static double frob(const Mat& A) { return frobenius_norm(A.data(), A.size()); }

// ‖QᵀQ - I‖_F on the columns of Q (rows, k), computed directly
static double columns_orthonormal_error(const Mat& Q, int rows, int k) {
    double s = 0.0;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            double d = 0.0;
            for (int i = 0; i < rows; i++) d += Q[(size_t)i * k + a] * Q[(size_t)i * k + b];
            s += (d - (a == b)) * (d - (a == b));
        }
    return sqrt(s);
}

// the scalar maps the NS iterations apply to each singular value
static double phi_quintic(double x, int steps) {
    for (int t = 0; t < steps; t++) x = NS_ABC[0] * x + NS_ABC[1] * x * x * x + NS_ABC[2] * x * x * x * x * x;
    return x;
}
static double phi_polar(double x) {
    for (int t = 0; t < 5; t++) {
        const double* k = POLAR_EXPRESS_ABC[t];
        x = k[0] * x + k[1] * x * x * x + k[2] * x * x * x * x * x;
    }
    return x;
}

// The fp64 product's register tiles (16 columns of four rows) and its plain edge loop sum every entry over p in
// the same order, so every shape, edge or not, and the transposed read give the same bits as one row at a time.
TEST_CASE("mat_mul: the register-tiled product gives the plain loop's bits, edges and transposed reads included") {
    Rng rng = rng_make(5);
    const int shapes[][3] = {{128, 128, 128}, {37, 53, 29}, {130, 7, 33}, {3, 128, 20}, {64, 40, 48}};
    for (const auto& sh : shapes) {
        int m = sh[0], k = sh[1], n = sh[2];
        Mat A = random_matrix(&rng, m, k), B = random_matrix(&rng, k, n), At = transpose(A, m, k);
        Mat C((size_t)m * n), Ct((size_t)m * n), plain((size_t)m * n, 0.0);
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++) {
                double a = A[(size_t)i * k + p];
                for (int j = 0; j < n; j++) plain[(size_t)i * n + j] += a * B[(size_t)p * n + j];
            }
        mat_mul(C.data(), A.data(), B.data(), m, k, n);
        mat_mul_atb(Ct.data(), At.data(), B.data(), m, k, n);
        INFO(m << " x " << k << " x " << n);
        CHECK(memcmp(C.data(), plain.data(), C.size() * sizeof(double)) == 0);
        CHECK(memcmp(Ct.data(), plain.data(), C.size() * sizeof(double)) == 0);
    }
}

TEST_CASE("svd_jacobi: known matrices") {
    // Jacobi SVD is accurate to a few l·eps relative (one-sided Jacobi has high relative accuracy): 1e-13
    Mat D = {1, 0, 0, 0, 5, 0, 0, 0, 3};
    Svd d = svd_of(D, 3, 3);
    CHECK(d.S[0] == doctest::Approx(5).epsilon(1e-13));
    CHECK(d.S[1] == doctest::Approx(3).epsilon(1e-13));
    CHECK(d.S[2] == doctest::Approx(1).epsilon(1e-13));
    CHECK(fabs(fabs(d.U[1 * 3 + 0]) - 1.0) < 1e-13);  // the first singular vector is e_2
    CHECK(frob_diff(compose(d.U, d.S, d.V, 3, 3), D) < 1e-13);
    // rank one: 7·u vᵀ, |u| = √14, |v| = √2: σ = 7·√28, the rest zero; U completed to orthonormal
    Mat u = {1, 2, 3, 0, 0}, v = {1, -1, 0};
    Mat R1(15);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) R1[i * 3 + j] = 7.0 * u[i] * v[j];
    Svd r = svd_of(R1, 5, 3);
    CHECK(r.S[0] == doctest::Approx(7.0 * sqrt(28.0)).epsilon(1e-13));
    CHECK(r.S[1] < 1e-13 * r.S[0]);
    CHECK(columns_orthonormal_error(r.U, 5, 3) < 1e-13);
    CHECK(columns_orthonormal_error(r.V, 3, 3) < 1e-13);
    CHECK(frob_diff(compose(r.U, r.S, r.V, 5, 3), R1) < 1e-12 * frob(R1));
    // zero: S = 0, U and V still orthonormal
    Svd z = svd_of(Mat(12, 0.0), 3, 4);
    CHECK(z.S[0] == 0.0);
    CHECK(columns_orthonormal_error(z.U, 3, 3) < 1e-15);
    CHECK(columns_orthonormal_error(z.V, 4, 3) < 1e-15);
}

TEST_CASE("svd_jacobi: random square, tall and wide") {
    Rng rng = rng_make(1);
    int shapes[3][2] = {{20, 20}, {30, 12}, {9, 25}};
    for (auto& sh : shapes) {
        int rows = sh[0], cols = sh[1], k = rows < cols ? rows : cols;
        Mat A = random_matrix(&rng, rows, cols);
        Svd s = svd_of(A, rows, cols);
        // tolerance: converged pairs are orthogonal to l·eps ≈ 7e-15; rotations add ~k·eps: 1e-13
        CHECK(frob_diff(compose(s.U, s.S, s.V, rows, cols), A) < 1e-13 * frob(A));
        CHECK(columns_orthonormal_error(s.U, rows, k) < 1e-13);
        CHECK(columns_orthonormal_error(s.V, cols, k) < 1e-13);
        for (int i = 1; i < k; i++) CHECK(s.S[i] <= s.S[i - 1]);
        Mat S2(k), work(muon_work_doubles(rows, cols));  // values only: the same values
        svd_jacobi(A.data(), rows, cols, NULL, S2.data(), NULL, work.data());
        CHECK(frob_diff(S2, s.S) < 1e-13 * s.S[0]);
    }
}

// NS on X must equal U φ(S/‖X‖_F) Vᵀ (the polynomial acts on singular values only). Tolerance 1e-11 relative:
// fp64 rounding (1e-16 per operation) is amplified at most by the maps' slope at zero (485 for the quintic,
// about 980 for Polar Express) and summed over k ≤ 40 terms; measured below 1e-13.
static void check_ns_family(int polar, double* band_lo2, double* band_hi2, double* band_lo3, double* band_hi3) {
    Rng rng = rng_make(polar ? 3 : 2);
    int shapes[3][2] = {{24, 24}, {16, 40}, {40, 16}};
    for (auto& sh : shapes) {
        int rows = sh[0], cols = sh[1], k = rows < cols ? rows : cols;
        for (int kind = 0; kind < 4; kind++) {
            CAPTURE(rows); CAPTURE(cols); CAPTURE(kind);
            Mat X;
            if (kind == 0) X = random_matrix(&rng, rows, cols);
            else if (kind == 1) {  // well conditioned: σ in [0.1, 1]·5
                Mat S(k);
                for (int i = 0; i < k; i++) S[i] = 5.0 * pow(0.1, (double)i / (k - 1));
                X = with_spectrum(&rng, rows, cols, S);
            } else if (kind == 2) {  // ill conditioned: σ from 1 down to 1e-5
                Mat S(k);
                for (int i = 0; i < k; i++) S[i] = pow(1e-5, (double)i / (k - 1));
                X = with_spectrum(&rng, rows, cols, S);
            } else {  // rank 4
                Mat L = random_matrix(&rng, rows, 4), Rt = random_matrix(&rng, 4, cols);
                X.assign((size_t)rows * cols, 0.0);
                mat_mul(X.data(), L.data(), Rt.data(), rows, 4, cols);
            }
            Svd s = svd_of(X, rows, cols);
            double xnorm = frob(X);
            Mat F(k);
            for (int i = 0; i < k; i++) {
                double x = s.S[i] / ((polar ? 1.01 : 1.0) * xnorm + NS_EPS);
                F[i] = polar ? phi_polar(x) : phi_quintic(x, 5);
            }
            Mat expect = compose(s.U, F, s.V, rows, cols);
            Mat R = X, work(muon_work_doubles(rows, cols));
            if (polar) polar_express(R.data(), rows, cols, work.data());
            else ns_quintic(R.data(), rows, cols, 5, work.data());
            CHECK(frob_diff(R, expect) < 1e-11 * frob(expect));
            // the same statement in the SVD's basis: Uᵀ R V is diagonal, with φ(σ) on the diagonal
            double off = 0.0, diag_err = 0.0;
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++) {
                    double d = 0.0;
                    for (int i = 0; i < rows; i++)
                        for (int j = 0; j < cols; j++)
                            d += s.U[(size_t)i * k + a] * R[(size_t)i * cols + j] * s.V[(size_t)j * k + b];
                    if (a == b) diag_err = fmax(diag_err, fabs(d - F[a]));
                    else off += d * d;
                }
            CHECK(sqrt(off) < 1e-11 * sqrt((double)k));
            CHECK(diag_err < 1e-11);
            // the band: singular values of the result (its own SVD), for inputs σ/‖X‖_F above 1e-2 and 1e-3
            Svd rs = svd_of(R, rows, cols);
            for (int i = 0; i < k; i++) {
                double x = s.S[i] / xnorm, y = F[i];
                CHECK(rs.S[i] < 1.21);  // never above the map's maximum, 1.2024 (quintic) / 1.1412 (Polar Express)
                if (x >= 1e-2) { *band_lo2 = fmin(*band_lo2, y); *band_hi2 = fmax(*band_hi2, y); }
                if (x >= 1e-3) { *band_lo3 = fmin(*band_lo3, y); *band_hi3 = fmax(*band_hi3, y); }
                if (kind == 3 && i >= 4) CHECK(rs.S[i] < 1e-10);  // zero directions stay (numerically) zero
            }
            Mat Fs = F;  // φ is not monotone: compare as sorted lists
            std::sort(Fs.begin(), Fs.end(), [](double a, double b) { return a > b; });
            for (int i = 0; i < k; i++) CHECK(fabs(rs.S[i] - Fs[i]) < 1e-11);
        }
    }
}

TEST_CASE("ns_quintic: U φ⁵(S) Vᵀ, singular values in Keller's band") {
    double lo2 = 9, hi2 = 0, lo3 = 9, hi3 = 0;
    check_ns_family(0, &lo2, &hi2, &lo3, &hi3);
    MESSAGE("quintic, 5 steps: σ/‖X‖_F >= 1e-2 -> [" << lo2 << ", " << hi2 << "], >= 1e-3 -> [" << lo3 << ", "
                                                     << hi3 << "]");
    // the scalar map's range on [1e-2, 1] is [0.6818, 1.1344], on [1e-3, 1] [0.4705, 1.2024] (dense sampling)
    CHECK(lo2 >= 0.6818);
    CHECK(hi2 <= 1.1344);
    CHECK(lo3 >= 0.4705);
    CHECK(hi3 <= 1.2024);
}

TEST_CASE("polar_express: U φ(S) Vᵀ, a tighter band around 1") {
    double lo2 = 9, hi2 = 0, lo3 = 9, hi3 = 0;
    check_ns_family(1, &lo2, &hi2, &lo3, &hi3);
    MESSAGE("Polar Express: σ/‖X‖_F >= 1e-2 -> [" << lo2 << ", " << hi2 << "], >= 1e-3 -> [" << lo3 << ", "
                                                   << hi3 << "]");
    // the scalar map's range on [1e-3, 1] is [0.8527, 1.1412]
    CHECK(lo3 >= 0.8527);
    CHECK(hi3 <= 1.1412);
}

// U S^p Vᵀ from the SVD; singular values at rounding level (< 1e-13σ_max) count as zero
static Mat svd_power(const Mat& X, int rows, int cols, double p) {
    Svd s = svd_of(X, rows, cols);
    double cut = 1e-13 * s.S[0];
    for (double& x : s.S) x = x > cut ? pow(x, p) : 0.0;
    return compose(s.U, s.S, s.V, rows, cols);
}

TEST_CASE("spectral_power: U S^p Vᵀ without an SVD") {
    Rng rng = rng_make(4);
    int shapes[3][2] = {{16, 16}, {30, 12}, {10, 26}};
    for (auto& sh : shapes) {
        int rows = sh[0], cols = sh[1], k = rows < cols ? rows : cols;
        Mat S(k);  // condition number 100
        for (int i = 0; i < k; i++) S[i] = 2.0 * pow(0.01, (double)i / (k - 1));
        Mat X = with_spectrum(&rng, rows, cols, S), work(muon_work_doubles(rows, cols));
        double powers[3] = {0.25, 0.5, 0.0};
        for (double p : powers) {
            CAPTURE(rows); CAPTURE(cols); CAPTURE(p);
            Mat R = X;
            spectral_power(R.data(), rows, cols, p, work.data());
            // tolerance 1e-8 relative: the regularizer moves σ^p by q·1e-12·‖M‖_F/σ² ≤ 0.5e-12·√k·1e4 ≈ 2e-8 on
            // the smallest σ only, a small share of the Frobenius norm (measured 7e-10; p = 0 1e-14).
            Mat expect = svd_power(X, rows, cols, p);
            CHECK(frob_diff(R, expect) < 1e-8 * frob(expect));
            if (p == 0.0) {  // the exact polar factor: orthonormal on the small side
                Mat Q = rows >= cols ? R : transpose(R, rows, cols);
                CHECK(columns_orthonormal_error(Q, rows >= cols ? rows : cols, k) < 1e-12);  // polished
            }
        }
        Mat R = X;  // p = 1: untouched
        spectral_power(R.data(), rows, cols, 1.0, work.data());
        CHECK(R == X);
    }
    // rank deficient (rank 3 in 20x14): the polar factor of the range, rounding noise not blown up
    int rows = 20, cols = 14;
    Mat L = random_matrix(&rng, rows, 3), Rt = random_matrix(&rng, 3, cols), X((size_t)rows * cols);
    mat_mul(X.data(), L.data(), Rt.data(), rows, 3, cols);
    Mat R = X, work(muon_work_doubles(rows, cols));
    spectral_power(R.data(), rows, cols, 0.0, work.data());
    Svd rs = svd_of(R, rows, cols);
    for (int i = 0; i < 3; i++) CHECK(fabs(rs.S[i] - 1.0) < 1e-12);  // polished: exact to rounding
    CHECK(rs.S[3] < 1e-6);  // noise directions (σ ~ 1e-16σ_max) are damped by the regularizer, not sent to 1
    // against U_r V_rᵀ: the regularized inverse root (norm up to 1e6) tilts the right singular space by ~4e-6
    // (measured): tolerance 2e-5. p = 1/2: measured 4e-9, tolerance 1e-7.
    Mat expect = svd_power(X, rows, cols, 0.0);
    CHECK(frob_diff(R, expect) < 2e-5 * frob(expect));
    R = X;
    spectral_power(R.data(), rows, cols, 0.5, work.data());
    expect = svd_power(X, rows, cols, 0.5);
    CHECK(frob_diff(R, expect) < 1e-7 * frob(expect));
    Mat Z((size_t)rows * cols, 0.0);
    spectral_power(Z.data(), rows, cols, 0.0, work.data());
    CHECK(frob(Z) == 0.0);
}

// ----------------------------------------------------------------------------------------------------
// muon_update against torch.optim.Muon

static MuonHyper default_hyper(float lr, float wd, float momentum, int nesterov, int adjust) {
    MuonHyper h;
    memset(&h, 0, sizeof(h));
    h.lr = lr; h.lr_max = lr; h.momentum = momentum; h.weight_decay = wd; h.nesterov = nesterov;
    h.method = MUON_NS; h.p = 0.0; h.base = BASE_MOMENTUM; h.normuon = 0; h.adjust = adjust; h.lr2_decay = 0;
    h.ns_steps = 5; h.beta2 = 0.95f; h.eps = 1e-8f; h.step = 1;
    return h;
}

TEST_CASE("muon_update: torch.optim.Muon, fp64 reference tightly, bf16 torch loosely; --ns-dtype bf16 as far as torch's") {
    Fixture fx;
    char err[ERR_LEN];
    REQUIRE_MESSAGE(fixture_load(&fx, "tests/fixtures/muon_steps.bin", err) == 0, err);
    REQUIRE(fx.find("ncases") != NULL);
    int ncases = fx.find("ncases")->i32()[0];
    for (int c = 0; c < ncases; c++) {
        char name[64];
        auto get = [&](const char* what) {
            snprintf(name, sizeof name, "c%d_%s", c, what);
            const FixtureArray* a = fx.find(name);
            REQUIRE_MESSAGE(a != NULL, name);
            return a;
        };
        const double* cfg = get("config")->f64();
        int rows = (int)cfg[0], cols = (int)cfg[1];
        size_t n = (size_t)rows * cols;
        CAPTURE(c);
        MuonHyper h = default_hyper((float)cfg[2], (float)cfg[3], (float)cfg[4], (int)cfg[5], (int)cfg[6]);
        const float* p0 = get("p0")->f32();
        const float* grads = get("grads")->f32();
        std::vector<float> param(p0, p0 + n), mom(n, 0.0f), p16(p0, p0 + n), m16(n, 0.0f);  // p16: --ns-dtype bf16
        Mat work(muon_work_doubles(rows, cols)), upd(n);
        for (int t = 0; t < 3; t++) {
            h.step = t + 1;
            muon_update(param.data(), grads + t * n, mom.data(), NULL, rows, cols, &h, work.data(), upd.data());
            MuonHyper h16 = h;
            h16.ns_bf16 = 1;
            muon_update(p16.data(), grads + t * n, m16.data(), NULL, rows, cols, &h16, work.data(), NULL);
            if (t != 0 && t != 2) continue;
            const double* ref_u = get(t == 0 ? "ref_u1" : "ref_u3")->f64();
            const float* ref_p = get(t == 0 ? "ref_p1" : "ref_p3")->f32();
            const float* torch_p = get(t == 0 ? "torch_p1" : "torch_p3")->f32();
            // fp64 reference, same float32 state: the update agrees to fp64 rounding (numpy's and our matmul
            // sum in different orders; NS amplifies by < 1e3): 1e-10 relative. Parameters are float32: at most
            // one rounding apart (2^-24 relative), checked as 1.2e-7·|p| + 1e-12.
            double du = 0.0, nu = 0.0;
            for (size_t i = 0; i < n; i++) {
                du += (upd[i] - ref_u[i]) * (upd[i] - ref_u[i]);
                nu += ref_u[i] * ref_u[i];
            }
            CHECK(sqrt(du) < 1e-10 * sqrt(nu));
            int far = 0;
            for (size_t i = 0; i < n; i++) far += fabs(param[i] - ref_p[i]) > 1.2e-7 * fabs(ref_p[i]) + 1e-12;
            CHECK(far == 0);
            // real torch.optim.Muon: Newton–Schulz in bf16 (8 mantissa bits, ~4e-3 relative per operation; the
            // iteration is self-correcting so errors do not compound). dev/gen_muon_fixture.py measured 0.7-1.9%
            // relative difference on the parameter change: tolerance 4e-2, and a cosine above 0.999.
            Mat dm(n), dt(n), d16(n);
            for (size_t i = 0; i < n; i++) {
                dm[i] = (double)param[i] - p0[i];
                dt[i] = (double)torch_p[i] - p0[i];
                d16[i] = (double)p16[i] - p0[i];
            }
            CHECK(frob_diff(dm, dt) < 4e-2 * frob(dt));
            CHECK(matrix_cosine(dm.data(), dt.data(), n) > 0.999);
            // --ns-dtype bf16 and torch's are two bf16 runs: their roundings differ (our sums are fp64, torch's fp32
            // in its order), so neither is closer to the other than to fp64. What must hold is that ours is as far
            // from the fp64 reference as torch's is: measured 0.74-1.6% against torch's 0.75-1.9% (ratios
            // 0.64-1.22) over these 8 steps; an fp32 iteration would be ~1e-6 away.
            double ours = frob_diff(d16, dm) / frob(dm), torchs = frob_diff(dt, dm) / frob(dm);
            CAPTURE(ours);
            CAPTURE(torchs);
            CHECK(ours > 0.5 * torchs);
            CHECK(ours < 2.0 * torchs);
        }
    }
}

TEST_CASE("newton_schulz in bf16: every matrix it leaves is bf16 values, and the map is fp64's within bf16's error") {
    Rng rng = rng_make(77);
    for (int shape = 0; shape < 2; shape++) {
        int rows = shape ? 40 : 24, cols = shape ? 24 : 40;  // wide, and tall (the Gram matrix on the other side)
        Mat G = random_matrix(&rng, rows, cols), X16 = G, X64 = G;
        Mat work(muon_work_doubles(rows, cols));
        newton_schulz(X64.data(), rows, cols, NS_ABC, 0, 5, 1.0, work.data());
        newton_schulz_batch(X16.data(), rows, cols, 1, NS_ABC, 0, 5, 1.0, work.data(), true);
        int off = 0;
        for (double x : X16) off += (double)bf16_round((float)x) != x;
        CHECK(off == 0);
        double rel = frob_diff(X16, X64) / frob(X64);
        CAPTURE(rel);
        CHECK(rel > 1e-3);  // bf16 really: 8 mantissa bits leave ~1e-2
        CHECK(rel < 4e-2);
    }
}

// ----------------------------------------------------------------------------------------------------
// Newton–Schulz on the Gram matrix (--ns-gram): the plain iteration's map, computed on s x s matrices

// Both forms evaluate the same polynomial of X_0X_0ᵀ, only with the products in another order, so in fp64 they
// differ by roundings: ~1e-16 per product, carried by at most the product of the a's (485 for the quintic, ~990
// for Polar Express, the largest eigenvalue Q_K can have) and by the steep part of φ(σ)/σ at small σ, which
// an ill-conditioned matrix reaches: measured up to 8.2e-12 here (with the matrix whose σ spread over 1e-6). The
// tolerance, 1e-10 relative, is above that with a margin, far below any error in the algebra (a wrong
// transpose, a missing identity, a step's coefficients on the wrong power: O(1e-2) or more), and below the
// products in the wrong order (up to 2e-8 on this ill-conditioned matrix: orthogonalize.h).
TEST_CASE("newton_schulz_gram_batch: the plain Newton-Schulz and Polar Express in fp64, wide, tall and square, batched") {
    Rng rng = rng_make(78);
    const int shapes[][2] = {{24, 96}, {96, 24}, {40, 40}, {7, 150}};
    const int count = 3;
    double worst = 0.0;
    for (auto& sh : shapes)
        for (int polar = 0; polar < 2; polar++) {
            int rows = sh[0], cols = sh[1], s = rows < cols ? rows : cols;
            size_t n = (size_t)rows * cols;
            CAPTURE(rows); CAPTURE(cols); CAPTURE(polar);
            const double* abc = polar ? &POLAR_EXPRESS_ABC[0][0] : NS_ABC;
            double mult = polar ? 1.01 : 1.0;
            Mat X(count * n), S(s);
            for (int m = 0; m < count; m++) {  // random; ill conditioned (σ from 1 to 1e-6); random and tiny
                for (int i = 0; i < s; i++) S[i] = pow(1e-6, (double)i / (s - 1));
                Mat one = m == 1 ? with_spectrum(&rng, rows, cols, S) : random_matrix(&rng, rows, cols);
                for (size_t i = 0; i < n; i++) X[m * n + i] = one[i] * (m == 2 ? 1e-4 : 1.0);
            }
            Mat gram = X, work(count * (n + 4 * (size_t)s * s));
            newton_schulz_gram_batch(gram.data(), rows, cols, count, abc, polar ? 3 : 0, 5, mult, work.data());
            for (int m = 0; m < count; m++) {
                Mat plain(X.begin() + m * n, X.begin() + (m + 1) * n), got(gram.begin() + m * n, gram.begin() + (m + 1) * n);
                Mat in = plain;
                double in_norm = frob(in);
                for (double& x : in) x /= mult * in_norm + NS_EPS;  // the normalised input, where both start
                newton_schulz(plain.data(), rows, cols, abc, polar ? 3 : 0, 5, mult, work.data());
                double rel = frob_diff(got, plain) / frob(plain);
                CAPTURE(m);
                CHECK(rel < 1e-10);
                CHECK(frob_diff(got, in) > 0.1 * frob(in));  // it did orthogonalize: far from where it started
                worst = fmax(worst, rel);
            }
        }
    MESSAGE("Gram form against the plain form, fp64: worst relative difference " << worst);
}

TEST_CASE("muon_update with --ns-gram: the plain step's update, on the matrices whose side ratio reaches the setting") {
    MuonHyper h = default_hyper(0.02f, 0.1f, 0.95f, 1, ADJUST_ORIGINAL);
    h.ns_gram = 4.0f;
    CHECK(muon_uses_gram(24, 96, &h));
    CHECK(muon_uses_gram(96, 24, &h));
    CHECK(!muon_uses_gram(40, 100, &h));  // ratio 2.5 < 4
    h.method = MUON_SPECTRAL;
    CHECK(!muon_uses_gram(24, 96, &h));  // the spectral powers have iterations of their own
    h.method = MUON_NS;
    h.ns_gram = 0.0f;
    CHECK(!muon_uses_gram(24, 96, &h));  // 0: never
    Rng rng = rng_make(79);
    const int shapes[][2] = {{24, 96}, {96, 24}};
    for (auto& sh : shapes)
        for (int method : {MUON_NS, MUON_POLAR}) {
            int rows = sh[0], cols = sh[1];
            size_t n = (size_t)rows * cols;
            CAPTURE(rows); CAPTURE(method);
            std::vector<float> p_plain(n), p_gram, m_plain(n, 0.0f), m_gram(n, 0.0f), g(n);
            for (float& x : p_plain) x = (float)(0.1 * rng_normal(&rng));
            p_gram = p_plain;
            Mat work(muon_work_doubles(rows, cols)), u_plain(n), u_gram(n);
            for (int t = 1; t <= 3; t++) {
                for (float& x : g) x = (float)rng_normal(&rng);
                MuonHyper hp = default_hyper(0.02f, 0.1f, 0.95f, 1, ADJUST_ORIGINAL), hg = hp;
                hp.method = hg.method = method;
                hp.step = hg.step = t;
                hg.ns_gram = 2.0f;
                REQUIRE(muon_uses_gram(rows, cols, &hg));
                muon_update(p_plain.data(), g.data(), m_plain.data(), NULL, rows, cols, &hp, work.data(), u_plain.data());
                muon_update(p_gram.data(), g.data(), m_gram.data(), NULL, rows, cols, &hg, work.data(), u_gram.data());
                CHECK(frob_diff(u_gram, u_plain) < 1e-10 * frob(u_plain));  // the tolerance of the test above
                CHECK(frob(u_plain) > 0.0);
                for (size_t i = 0; i < n; i++)  // parameters apart by at most one float32 rounding per step
                    CHECK(fabs((double)p_gram[i] - p_plain[i]) <= t * 1.2e-7 * fabs(p_plain[i]) + 1e-12);
            }
        }
}

// ----------------------------------------------------------------------------------------------------
// NorMuon, lr² weight decay, the Adam base: against loops written independently

TEST_CASE("normuon_normalize: per-row second moment, Frobenius norm kept") {
    Rng rng = rng_make(5);
    int rows = 7, cols = 11;
    std::vector<float> v(rows, 0.0f);
    Mat v_ref(rows, 0.0);  // the state in double, accumulated here
    for (int t = 0; t < 3; t++) {
        Mat O = random_matrix(&rng, rows, cols);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) O[(size_t)i * cols + j] *= 1.0 + i;  // uneven rows, as after NS
        // independently: column-major sums, v in double, one scale per row, then one global factor
        Mat row_sq(rows, 0.0);
        for (int j = 0; j < cols; j++)
            for (int i = 0; i < rows; i++) row_sq[i] += O[(size_t)i * cols + j] * O[(size_t)i * cols + j];
        double before = 0.0, after = 0.0;
        Mat row_scale(rows);
        for (int i = 0; i < rows; i++) {
            v_ref[i] = 0.95 * v_ref[i] + 0.05 * row_sq[i] / cols;
            row_scale[i] = 1.0 / (sqrt(v_ref[i]) + 1e-10);
            before += row_sq[i];
            after += row_sq[i] * row_scale[i] * row_scale[i];
        }
        Mat expect = O;
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) expect[(size_t)i * cols + j] *= row_scale[i] * sqrt(before / after);
        normuon_normalize(O.data(), rows, cols, v.data(), 0.95, 1e-10);
        // v is float state: 2^-24 relative per step, a few steps: 1e-6. O inherits half of it through √v.
        for (int i = 0; i < rows; i++) CHECK(v[i] == doctest::Approx(v_ref[i]).epsilon(1e-6));
        CHECK(frob_diff(O, expect) < 1e-6 * frob(expect));
        CHECK(frob(O) == doctest::Approx(sqrt(before)).epsilon(1e-12));  // norm kept to rounding
        for (int i = 0; t == 0 && i < rows; i++) {  // from v = 0 one step makes every row the same norm
            double row_norm = frobenius_norm(&O[(size_t)i * cols], cols);
            CHECK(row_norm == doctest::Approx(sqrt(before / rows)).epsilon(1e-6));
        }
    }
}

TEST_CASE("decay_factor and muon_update with lr² weight decay and NorMuon") {
    CHECK(decay_factor(0.02, 0.02, 0.1, 0) == doctest::Approx(1.0 - 0.002).epsilon(1e-15));
    CHECK(decay_factor(0.02, 0.02, 0.1, 1) == doctest::Approx(1.0 - 0.002).epsilon(1e-15));  // equal at the peak
    CHECK(decay_factor(0.005, 0.02, 0.1, 1) == doctest::Approx(1.0 - 0.1 * 0.005 * 0.005 / 0.02).epsilon(1e-15));
    CHECK(decay_factor(0.005, 0.02, 0.1, 0) == doctest::Approx(1.0 - 0.0005).epsilon(1e-15));
    Rng rng = rng_make(6);
    int rows = 12, cols = 9;
    size_t n = (size_t)rows * cols;
    MuonHyper h = default_hyper(0.005f, 0.1f, 0.9f, 1, ADJUST_MATCH_RMS_ADAMW);
    h.lr_max = 0.02f; h.lr2_decay = 1; h.normuon = 1;
    std::vector<float> param(n), mom(n, 0.0f), v(muon_second_floats(rows, cols, &h), 0.0f);
    REQUIRE(v.size() == (size_t)rows);
    for (float& x : param) x = (float)(0.1 * rng_normal(&rng));
    Mat work(muon_work_doubles(rows, cols)), upd(n), mom_ref(n, 0.0), v_ref(rows, 0.0);
    for (int t = 0; t < 3; t++) {
        std::vector<float> grad(n), before = param;
        for (float& x : grad) x = (float)rng_normal(&rng);
        h.step = t + 1;
        muon_update(param.data(), grad.data(), mom.data(), v.data(), rows, cols, &h, work.data(), upd.data());
        // independently: momentum in double, Nesterov, NS (tested above), NorMuon by rows, lr² decay
        Mat u(n);
        for (size_t i = 0; i < n; i++) {
            mom_ref[i] = 0.9f * mom_ref[i] + (1.0 - 0.9f) * grad[i];
            u[i] = (1.0 - 0.9f) * grad[i] + 0.9f * mom_ref[i];
        }
        Mat nsw(muon_work_doubles(rows, cols));
        ns_quintic(u.data(), rows, cols, 5, nsw.data());
        double before_sq = 0.0, after_sq = 0.0;
        for (int i = 0; i < rows; i++) {
            double ms = 0.0;
            for (int j = 0; j < cols; j++) ms += u[(size_t)i * cols + j] * u[(size_t)i * cols + j];
            before_sq += ms;
            v_ref[i] = 0.95f * v_ref[i] + (1.0 - 0.95f) * ms / cols;
            for (int j = 0; j < cols; j++) u[(size_t)i * cols + j] /= sqrt(v_ref[i]) + 1e-10;
            for (int j = 0; j < cols; j++) after_sq += u[(size_t)i * cols + j] * u[(size_t)i * cols + j];
        }
        double lr = 0.005f, step = lr * 0.2 * sqrt(12.0) * sqrt(before_sq / after_sq);
        double decay = 1.0 - 0.1f * lr * lr / 0.02f;
        // float state (momentum, v) differs from the double loop by ~1e-7 relative, which NS carries to the
        // update at a similar size (measured 2e-8): 1e-6 relative on the update; weights of size 0.1 are
        // float (one rounding = 7e-9): 1e-7 absolute (measured 1.4e-8)
        double du = 0.0, nu = 0.0, worst = 0.0;
        for (size_t i = 0; i < n; i++) {
            du += (upd[i] - step * u[i]) * (upd[i] - step * u[i]);
            nu += step * u[i] * step * u[i];
            worst = fmax(worst, fabs(param[i] - (before[i] * decay - step * u[i])));
        }
        CHECK(sqrt(du) < 1e-6 * sqrt(nu));
        CHECK(worst < 1e-7);
    }
}

TEST_CASE("muon_update: Adam RMS base with spectral powers p = 1 and p = 1/2") {
    Rng rng = rng_make(8);
    int rows = 10, cols = 14;
    size_t n = (size_t)rows * cols;
    double powers[2] = {1.0, 0.5};
    for (double p : powers) {
        MuonHyper h = default_hyper(0.01f, 0.0f, 0.9f, 0, ADJUST_NONE);
        h.method = MUON_SPECTRAL; h.p = p; h.base = BASE_ADAM_RMS; h.beta2 = 0.95f; h.eps = 1e-8f;
        std::vector<float> param(n, 0.5f), mom(n, 0.0f), v(muon_second_floats(rows, cols, &h), 0.0f);
        REQUIRE(v.size() == n);
        Mat work(muon_work_doubles(rows, cols)), upd(n), m_ref(n, 0.0), v_ref(n, 0.0);
        for (int t = 1; t <= 3; t++) {
            std::vector<float> grad(n);
            for (float& x : grad) x = (float)(rng_normal(&rng) * (1 + t));
            h.step = t;
            muon_update(param.data(), grad.data(), mom.data(), v.data(), rows, cols, &h, work.data(), upd.data());
            Mat dir(n);  // Adam, as torch.optim.Adam writes it
            for (size_t i = 0; i < n; i++) {
                m_ref[i] = 0.9f * m_ref[i] + (1 - 0.9f) * (double)grad[i];
                v_ref[i] = 0.95f * v_ref[i] + (1 - 0.95f) * (double)grad[i] * grad[i];
                dir[i] = m_ref[i] / (1 - pow(0.9f, t)) / (sqrt(v_ref[i] / (1 - pow(0.95f, t))) + 1e-8f);
            }
            Mat expect = svd_power(dir, rows, cols, p);
            for (double& x : expect) x *= 0.01f;
            // float state (1e-7 relative) and, for p = 1/2, spectral_power's ~1e-9 regularization error:
            // measured 3e-8, tolerance 1e-6
            CHECK(frob_diff(upd, expect) < 1e-6 * frob(expect));
        }
    }
}

// ----------------------------------------------------------------------------------------------------
// health metrics on matrices with known answers

TEST_CASE("health metrics: orthogonal, rank one, diag(3, 1, 1, 1)") {
    Rng rng = rng_make(9);
    Mat work(muon_work_doubles(20, 20));
    // orthogonal 12x12 and a wide 8x20 with orthonormal rows: every σ = 1. Tolerances 1e-12: SVD rounding.
    Svd o = svd_of(random_matrix(&rng, 12, 12), 12, 12);
    Svd w = svd_of(random_matrix(&rng, 8, 20), 8, 20);
    Mat Q = compose(o.U, Mat(12, 1.0), o.V, 12, 12), Qw = compose(w.U, Mat(8, 1.0), w.V, 8, 20);
    CHECK(matrix_stable_rank(Q.data(), 12, 12, work.data()) == doctest::Approx(12).epsilon(1e-12));
    CHECK(matrix_effective_rank(Q.data(), 12, 12, work.data()) == doctest::Approx(12).epsilon(1e-12));
    CHECK(matrix_flatness(Q.data(), 12, 12, work.data()) == doctest::Approx(1).epsilon(1e-12));
    CHECK(matrix_ortho_error(Q.data(), 12, 12, work.data()) < 1e-12);
    CHECK(matrix_stable_rank(Qw.data(), 8, 20, work.data()) == doctest::Approx(8).epsilon(1e-12));
    CHECK(matrix_effective_rank(Qw.data(), 8, 20, work.data()) == doctest::Approx(8).epsilon(1e-12));
    CHECK(matrix_ortho_error(Qw.data(), 8, 20, work.data()) < 1e-12);
    CHECK(matrix_spectral_norm(Q.data(), 12, 12, work.data()) == doctest::Approx(1).epsilon(1e-9));
    // rank one 10x6: stable and effective rank 1; Q = X/σ_max has QᵀQ - I = diag(0, -1, ..): error √5
    Mat r1(60);
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 6; j++) r1[i * 6 + j] = (i + 1.0) * (j - 2.5);
    CHECK(matrix_stable_rank(r1.data(), 10, 6, work.data()) == doctest::Approx(1).epsilon(1e-12));
    // the other σ are ~1e-16 of the first: p log p ~ 1e-14 each
    CHECK(matrix_effective_rank(r1.data(), 10, 6, work.data()) == doctest::Approx(1).epsilon(1e-10));
    CHECK(matrix_ortho_error(r1.data(), 10, 6, work.data()) == doctest::Approx(sqrt(5.0)).epsilon(1e-12));
    // diag(3, 1, 1, 1), as 4x4 and padded to 4x6 with zero columns
    Mat d4 = {3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    Mat d46(24, 0.0);
    for (int i = 0; i < 4; i++) d46[i * 6 + i] = d4[i * 4 + i];
    double flat = exp(-(0.75 * log(0.75) + 0.25 * log(1.0 / 12.0))) / 4.0;  // σ²/Σσ² = (3/4, 1/12, 1/12, 1/12)
    for (int pad = 0; pad < 2; pad++) {
        const double* d = pad ? d46.data() : d4.data();
        int cols = pad ? 6 : 4;
        CHECK(matrix_stable_rank(d, 4, cols, work.data()) == doctest::Approx(12.0 / 9.0).epsilon(1e-13));
        // σ/Σσ = (1/2, 1/6, 1/6, 1/6): exp(H) = √12. Q = diag(1, 1/3, 1/3, 1/3): ‖QᵀQ - I‖_F = √3·8/9.
        CHECK(matrix_effective_rank(d, 4, cols, work.data()) == doctest::Approx(sqrt(12.0)).epsilon(1e-13));
        CHECK(matrix_flatness(d, 4, cols, work.data()) == doctest::Approx(flat).epsilon(1e-13));
        double ortho = sqrt(3.0) * 8.0 / 9.0;
        CHECK(matrix_ortho_error(d, 4, cols, work.data()) == doctest::Approx(ortho).epsilon(1e-13));
        // power iteration: the error shrinks as (1/3)^(2·iterations), so 1e-10 is reached in ~12
        CHECK(matrix_spectral_norm(d, 4, cols, work.data()) == doctest::Approx(3).epsilon(1e-10));
    }
    // orthogonality error against the Gram matrix computed directly (a random tall 10x7)
    Mat X = random_matrix(&rng, 10, 7);
    Svd xs = svd_of(X, 10, 7);
    Mat G(49);
    mat_mul_atb(G.data(), X.data(), X.data(), 7, 10, 7);
    double e = 0.0;
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 7; j++) {
            double g = G[i * 7 + j] / (xs.S[0] * xs.S[0]) - (i == j);
            e += g * g;
        }
    CHECK(matrix_ortho_error(X.data(), 10, 7, work.data()) == doctest::Approx(sqrt(e)).epsilon(1e-12));
    // power iteration on a matrix with a known top gap (5 vs 4): (4/5)^(2·300) is far below 1e-12
    Mat S5(7);
    for (int i = 0; i < 7; i++) S5[i] = i == 0 ? 5.0 : 4.0 - 0.5 * i;
    Mat K = with_spectrum(&rng, 10, 7, S5);
    CHECK(matrix_spectral_norm(K.data(), 10, 7, work.data()) == doctest::Approx(5).epsilon(1e-10));
    // cosine and RMS
    X[3] = 0.0;
    Mat neg = X, other(70, 0.0);
    for (double& x : neg) x = -x;
    other[3] = 1.0;  // orthogonal to X
    CHECK(matrix_cosine(X.data(), X.data(), 70) == doctest::Approx(1).epsilon(1e-15));
    CHECK(matrix_cosine(X.data(), neg.data(), 70) == doctest::Approx(-1).epsilon(1e-15));
    CHECK(matrix_cosine(X.data(), other.data(), 70) == 0.0);
    Mat c(70, -0.25);
    CHECK(matrix_rms(c.data(), 70) == doctest::Approx(0.25).epsilon(1e-15));
    // all of it at once: update = 0.01·Q (orthogonal), gradient = Q, weight = diag(3, 1, 1, 1)
    Mat upd = Q;
    std::vector<float> grad(144), weight(16);
    for (int i = 0; i < 144; i++) { upd[i] *= 0.01; grad[i] = (float)Q[i]; }
    for (int i = 0; i < 16; i++) weight[i] = (float)d4[i];
    UpdateHealth hl = update_health(upd.data(), grad.data(), weight.data(), 12, 12, work.data());
    CHECK(hl.stable_rank == doctest::Approx(12).epsilon(1e-12));
    CHECK(hl.effective_rank == doctest::Approx(12).epsilon(1e-12));
    CHECK(hl.ortho_error < 1e-12);
    CHECK(hl.grad_cosine == doctest::Approx(1).epsilon(1e-7));  // the gradient went through float
    CHECK(hl.update_rms == doctest::Approx(0.01 / sqrt(12.0)).epsilon(1e-12));  // ‖Q‖_F² = 12 over 144 entries
    hl = update_health(d4.data(), grad.data(), weight.data(), 4, 4, work.data());
    CHECK(hl.weight_spectral_norm == doctest::Approx(3).epsilon(1e-10));
}

// ----------------------------------------------------------------------------------------------------
// the documented work sizes, thread-count independence, configuration checks

// runs fn with exactly `need` doubles of work followed by guard values, and checks the guard is untouched
template <typename F> static bool stays_in_work(size_t need, F fn) {
    Mat work(need + 64, 0.0);
    for (size_t i = need; i < work.size(); i++) work[i] = 12345.678;
    fn(work.data());
    for (size_t i = need; i < work.size(); i++)
        if (work[i] != 12345.678) return false;
    return true;
}

TEST_CASE("work sizes: every function stays inside what it documents") {
    Rng rng = rng_make(10);
    int shapes[2][2] = {{9, 14}, {14, 9}};
    for (auto& sh : shapes) {
        int rows = sh[0], cols = sh[1];
        size_t n = (size_t)rows * cols, s = rows < cols ? rows : cols;
        CAPTURE(rows);
        Mat X = random_matrix(&rng, rows, cols), S(s), Y;
        Mat U(rows * s), V(cols * s);
        std::vector<float> fg(n, 0.5f), fw(n, 0.25f);
        CHECK(stays_in_work(n + 2 * s * s, [&](double* w) { Y = X; ns_quintic(Y.data(), rows, cols, 5, w); }));
        CHECK(stays_in_work(n + 2 * s * s, [&](double* w) { Y = X; polar_express(Y.data(), rows, cols, w); }));
        CHECK(stays_in_work(n + 4 * s * s, [&](double* w) {
            Y = X;
            newton_schulz_gram_batch(Y.data(), rows, cols, 1, NS_ABC, 0, 5, 1.0, w);
        }));
        CHECK(stays_in_work(n + 5 * s * s, [&](double* w) { Y = X; spectral_power(Y.data(), rows, cols, .25, w); }));
        CHECK(stays_in_work(n + 5 * s * s, [&](double* w) { Y = X; spectral_power(Y.data(), rows, cols, 0, w); }));
        CHECK(stays_in_work(n + s * s,
                            [&](double* w) { svd_jacobi(X.data(), rows, cols, U.data(), S.data(), V.data(), w); }));
        CHECK(stays_in_work(n + s * s + s, [&](double* w) { matrix_effective_rank(X.data(), rows, cols, w); }));
        CHECK(stays_in_work(n + s * s + rows + cols,
                            [&](double* w) { update_health(X.data(), fg.data(), fw.data(), rows, cols, w); }));
        for (int method = MUON_NS; method <= MUON_SPECTRAL; method++)
            for (int variant = 0; variant < 2; variant++) {
                MuonHyper h = default_hyper(0.01f, 0.1f, 0.95f, 1, ADJUST_ORIGINAL);
                h.method = method; h.p = 0.5; h.normuon = variant;
                h.base = variant ? BASE_ADAM_RMS : BASE_MOMENTUM;
                std::vector<float> p(n, 0.1f), g(n), m(n, 0.0f), sec(muon_second_floats(rows, cols, &h) + 1, 0.0f);
                for (float& x : g) x = (float)rng_normal(&rng);
                CHECK(stays_in_work(2 * n + 5 * s * s, [&](double* w) {
                    muon_update(p.data(), g.data(), m.data(), sec.data(), rows, cols, &h, w, NULL);
                }));
                CHECK(sec.back() == 0.0f);  // state stays inside muon_second_floats
                CHECK(2 * n + 5 * s * s <= muon_work_doubles(rows, cols));
            }
    }
}

TEST_CASE("results do not depend on the number of threads") {
    Rng rng = rng_make(11);
    int rows = 64, cols = 400;  // big enough for every parallel path (m·k·n and k·l over their thresholds)
    Mat X = random_matrix(&rng, rows, cols), work(muon_work_doubles(rows, cols));
    int threads = omp_get_max_threads();
    Mat out[2][3];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t == 0 ? 1 : 3);
        out[t][0] = X;
        ns_quintic(out[t][0].data(), rows, cols, 5, work.data());
        out[t][1] = X;
        spectral_power(out[t][1].data(), rows, cols, 0.5, work.data());
        out[t][2] = Mat(rows);
        svd_jacobi(X.data(), rows, cols, NULL, out[t][2].data(), NULL, work.data());
    }
    omp_set_num_threads(threads);
    for (int f = 0; f < 3; f++) CHECK(out[0][f] == out[1][f]);  // bit for bit
}

TEST_CASE("muon_check: bad configurations are named") {
    char err[ERR_LEN];
    MuonHyper h = default_hyper(0.02f, 0.1f, 0.95f, 1, ADJUST_ORIGINAL);
    CHECK(muon_check(&h, err) == 0);
    h.method = MUON_SPECTRAL; h.p = 1.5;
    CHECK(muon_check(&h, err) == -1);
    CHECK(std::string(err).find("p = 1.5") != std::string::npos);
    h.p = 0.5; h.lr2_decay = 1; h.lr_max = 0.0f;
    CHECK(muon_check(&h, err) == -1);
    CHECK(std::string(err).find("lr_max") != std::string::npos);
    h = default_hyper(0.02f, 0.1f, 1.0f, 1, ADJUST_ORIGINAL);
    CHECK(muon_check(&h, err) == -1);
    CHECK(std::string(err).find("momentum") != std::string::npos);
    h = default_hyper(0.02f, 0.1f, 0.95f, 1, ADJUST_ORIGINAL);
    h.ns_gram = 2.0f;
    CHECK(muon_check(&h, err) == 0);
    h.ns_bf16 = 1;  // the Gram form is full precision only
    CHECK(muon_check(&h, err) == -1);
    CHECK(std::string(err) == "--ns-gram 2 with --ns-dtype bf16: Newton-Schulz on the Gram matrix is full precision "
                              "only (in bf16 it drifts)");
    h.ns_bf16 = 0;
    h.ns_gram = -1.0f;
    CHECK(muon_check(&h, err) == -1);
    CHECK(std::string(err).find("ns_gram = -1") != std::string::npos);
}
