/* collide: prints task ids whose room names ("task_progress:<id>") collide
 * in the low `bits` bits of the slot hash of realtimed's old, unkeyed map
 * hash (FNV-1a 64 with a murmur finaliser, top 32 bits). An attacker could
 * precompute these offline; bench/attacks.mjs sends them to an old and a
 * new build to measure what hash flooding costs each (issue 8, item 7).
 *
 *   collide N BITS   N ids on stdout, one per line */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t old_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h < 2 ? h + 2 : h;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: collide N BITS\n");
        return 64;
    }
    long want = atol(argv[1]);
    int bits = atoi(argv[2]);
    uint32_t mask = bits >= 32 ? 0xffffffffu : (1u << bits) - 1;
    char k[64] = "task_progress:";
    size_t pre = strlen(k);
    for (uint64_t i = 0; want > 0; i++) {
        int n = snprintf(k + pre, sizeof k - pre, "%llx", (unsigned long long)i);
        uint32_t slot = (uint32_t)(old_hash(k, pre + (size_t)n) >> 32);
        if (slot < 2) slot += 2;
        if ((slot & mask) == 0) {
            puts(k + pre);
            want--;
        }
    }
    return 0;
}
