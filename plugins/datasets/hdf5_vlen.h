/* A guard for reading variable-length strings (h5py's default for /classes) with libhdf5
 * 1.10, included by hdf5.c (a plugin is built from one C file; this keeps that file shorter).
 *
 * Why: libhdf5 1.10 trusts a corrupt global heap. Reading a string, it allocates the
 * element's stated length (the dataset's descriptor) and then copies the heap object's own
 * size into that buffer (H5HG_read), never comparing the two. It also never checks that the
 * object fits in its heap collection, or that the object exists at all. A fuzzed file
 * crashed `mmfuse validate` there (SIGSEGV in memcpy). So before H5Dread, each descriptor of
 * a contiguous dataset is read from the file and its object checked: it must exist in its
 * collection, lie inside it, and be as long as the descriptor says. The collection is
 * walked as libhdf5 walks it (H5HG__cache_heap_deserialize), so both see the same objects.
 * Other layouts have no raw bytes to read through the API. They are left to libhdf5
 * (mmfuse import csv and h5py write /classes contiguous).
 */
#ifndef MMFUSE_PLUGINS_HDF5_VLEN_H
#define MMFUSE_PLUGINS_HDF5_VLEN_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <hdf5.h>

static uint64_t vlen_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* The collection at `addr` (read into *buf, *len bytes), re-read only when addr changes. */
static int vlen_collection(int fd, uint64_t base, uint64_t addr, size_t ss, uint8_t **buf,
                           uint64_t *len, uint64_t *at, char *why, size_t size)
{
    if (*buf && *at == addr)
        return 0;
    uint8_t head[16];
    const size_t hdr = 8 + ss;
    if (pread(fd, head, hdr, (off_t)(base + addr)) != (ssize_t)hdr || memcmp(head, "GCOL", 4)) {
        snprintf(why, size, "a string's heap collection at %llu is missing or not one",
                 (unsigned long long)addr);
        return -1;
    }
    const uint64_t n = vlen_le(head + 8, ss);
    uint8_t *grown = n >= hdr && n <= ((uint64_t)256 << 20) ? realloc(*buf, (size_t)n) : NULL;
    if (!grown || pread(fd, grown, (size_t)n, (off_t)(base + addr)) != (ssize_t)n) {
        if (grown)
            *buf = grown;
        snprintf(why, size, "a string's heap collection at %llu claims %llu bytes",
                 (unsigned long long)addr, (unsigned long long)n);
        return -1;
    }
    *buf = grown;
    *len = n;
    *at = addr;
    return 0;
}

/* 0 when object `idx` of the collection lies inside it and holds exactly `want` bytes; as
 * libhdf5 reads it, the last object of that index counts. */
static int vlen_object_ok(const uint8_t *c, uint64_t len, size_t ss, uint64_t idx, uint64_t want)
{
    const uint64_t objhdr = 8 + ss;
    uint64_t p = 8 + ss, found = 0, found_size = 0;
    if (idx == 0)
        return -1; /* index 0 is the free space, never a string */
    while (p < len) {
        if (p + objhdr > len)
            break; /* free space too small for a header */
        const uint64_t id = vlen_le(c + p, 2), sz = vlen_le(c + p + 8, ss);
        if (sz > len) /* (before any sum with it can wrap) */
            return -1;
        const uint64_t need = id > 0 ? objhdr + ((sz + 7) & ~(uint64_t)7) : sz;
        if (id > 0 && p + objhdr + sz > len)
            return -1;
        if (id == idx) {
            found = 1;
            found_size = sz;
        }
        if (need == 0)
            break; /* a zero-sized free space: libhdf5 would loop; nothing follows */
        p += need;
    }
    return found && found_size == want ? 0 : -1;
}

/* Check every string of the contiguous vlen dataset d (k of them); -1 with `why`. */
static int vlen_heaps_ok(const char *file, hid_t fid, hid_t d, uint64_t k, char *why,
                         size_t size)
{
    hid_t dcpl = H5Dget_create_plist(d), fcpl = H5Fget_create_plist(fid);
    const int contiguous = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS;
    size_t sa = 0, ss = 0;
    hsize_t userblock = 0;
    int sizes = fcpl >= 0 && H5Pget_sizes(fcpl, &sa, &ss) >= 0 &&
                H5Pget_userblock(fcpl, &userblock) >= 0 && sa >= 1 && sa <= 8 && ss >= 1 &&
                ss <= 8;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    const haddr_t off = contiguous ? H5Dget_offset(d) : HADDR_UNDEF;
    if (!contiguous || !sizes || off == HADDR_UNDEF)
        return 0; /* another layout, or nothing stored (fill values) */
    const int fd = open(file, O_RDONLY | O_CLOEXEC);
    const size_t el = 4 + sa + 4;
    uint8_t desc[16], *coll = NULL;
    uint64_t coll_len = 0, coll_at = 0;
    int rc = fd < 0 ? -1 : 0;
    if (rc)
        snprintf(why, size, "cannot be reread to check its strings");
    for (uint64_t i = 0; !rc && i < k; i++) {
        /* H5Dget_offset counts from the start of the file; heap addresses from the end of
         * the userblock */
        if (pread(fd, desc, el, (off_t)(off + i * el)) != (ssize_t)el) {
            snprintf(why, size, "string %llu is beyond the end of the file", (unsigned long long)i);
            rc = -1;
            break;
        }
        const uint64_t len = vlen_le(desc, 4), addr = vlen_le(desc + 4, sa);
        const uint64_t idx = vlen_le(desc + 4 + sa, 4);
        if (addr == 0)
            continue; /* NULL: libhdf5 reads no heap (it does read one for a length of 0) */
        rc = vlen_collection(fd, userblock, addr, ss, &coll, &coll_len, &coll_at, why, size);
        if (!rc && vlen_object_ok(coll, coll_len, ss, idx, len)) {
            snprintf(why, size, "string %llu points at a heap object that is missing or does "
                     "not match its length", (unsigned long long)i);
            rc = -1;
        }
    }
    free(coll);
    if (fd >= 0)
        close(fd);
    return rc;
}

#endif
