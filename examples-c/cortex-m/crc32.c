/* CRC-32 in C, independent of the library (which has none of its own). */
#include "fw.h"

uint8_t image_byte(uint32_t seed, uint32_t i) {
    uint32_t x = i * 0x9E3779B1u ^ seed;
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return (uint8_t)x;
}

uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len) {
    crc = ~crc;
    while (len--) {
        crc ^= *data++;
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

uint32_t image_crc32(uint32_t seed, uint32_t len) {
    uint32_t crc = 0;
    for (uint32_t i = 0; i < len; i++) {
        uint8_t b = image_byte(seed, i);
        crc = crc32_update(crc, &b, 1);
    }
    return crc;
}
