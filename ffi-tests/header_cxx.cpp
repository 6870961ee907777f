// fota.h must compile as C++ (extern "C", no C-only constructs) and link.
#include "fota.h"

#include <cstdio>
#include <cstring>

static_assert(sizeof(fota_progress_t) == 9 * sizeof(uint32_t), "fota_progress_t layout");

int main() {
    fota_opts_t opts;
    fota_opts_init(&opts);
    if (opts.timeout_ms != FOTA_DEFAULT_TIMEOUT_MS || !opts.show_url) {
        return 1;
    }
    if (std::strcmp(fota_result_str(FOTA_ERR_BUSY), "FOTA_ERR_BUSY") != 0) {
        return 2;
    }
    if (fota_result_libfota(FOTA_ERR_TLS) != FOTA_ERR_CONNECT) {
        return 3;
    }
    if (fota_init(nullptr) != FOTA_ERR_INVALID_ARG) {
        return 4;
    }
    fota_progress_t p;
    fota_get_progress(&p);
    std::printf("fota.h as C++: ok (state %u)\n", static_cast<unsigned>(p.state));
    return 0;
}
