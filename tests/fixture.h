// tests/fixture.h: reads the fixture files that dev/*.py scripts write with PyTorch / tiktoken, so the
// tests can compare against them without Python.
// Format (little-endian), written by dev/fixture.py:
//   "MGFX" | uint32 count | count x { uint32 name_len | name | uint32 dtype (0 f32, 1 i32, 2 f64)
//                                     | uint32 ndim | int32 dims[ndim] | data }
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <vector>

enum FixtureDtype { FIX_F32 = 0, FIX_I32 = 1, FIX_F64 = 2 };

struct FixtureArray {
    std::string name;
    int dtype;
    std::vector<int> dims;
    std::vector<char> bytes;  // raw data
    size_t count() const {
        size_t n = 1;
        for (int d : dims) n *= (size_t)d;
        return n;
    }
    const float* f32() const { return dtype == FIX_F32 ? (const float*)bytes.data() : NULL; }
    const int32_t* i32() const { return dtype == FIX_I32 ? (const int32_t*)bytes.data() : NULL; }
    const double* f64() const { return dtype == FIX_F64 ? (const double*)bytes.data() : NULL; }
};

struct Fixture {
    std::vector<FixtureArray> arrays;
    const FixtureArray* find(const char* name) const {
        for (const FixtureArray& a : arrays)
            if (a.name == name) return &a;
        return NULL;
    }
};

// 0 on success; -1 (with a message in err, 512 bytes) when the file is missing or malformed
static int fixture_load(Fixture* fx, const char* path, char* err) {
    FILE* f = fopen(path, "rb");
    if (!f) { snprintf(err, 512, "%s: cannot open fixture", path); return -1; }
    char magic[4];
    uint32_t count = 0;
    int ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "MGFX", 4) == 0 && fread(&count, 4, 1, f) == 1;
    for (uint32_t i = 0; ok && i < count; i++) {
        FixtureArray a;
        uint32_t name_len = 0, dtype = 0, ndim = 0;
        ok = fread(&name_len, 4, 1, f) == 1 && name_len < 4096;
        if (!ok) break;
        a.name.resize(name_len);
        ok = fread(&a.name[0], 1, name_len, f) == name_len && fread(&dtype, 4, 1, f) == 1 && dtype <= 2 &&
             fread(&ndim, 4, 1, f) == 1 && ndim <= 8;
        if (!ok) break;
        a.dtype = (int)dtype;
        a.dims.resize(ndim);
        ok = ndim == 0 || fread(a.dims.data(), 4, ndim, f) == ndim;
        if (!ok) break;
        size_t elem = dtype == FIX_F64 ? 8 : 4;
        a.bytes.resize(a.count() * elem);
        ok = fread(a.bytes.data(), 1, a.bytes.size(), f) == a.bytes.size();
        if (ok) fx->arrays.push_back(a);
    }
    fclose(f);
    if (!ok) { snprintf(err, 512, "%s: malformed fixture (regenerate it with its dev/ script)", path); return -1; }
    return 0;
}
