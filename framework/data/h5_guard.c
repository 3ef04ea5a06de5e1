/* A file driver for every HDF5 file mmfuse writes (imports, checkpoints, embeddings):
 * HDF5's sec2 (pread/pwrite on a descriptor), except that a failed write is never reported
 * to HDF5.
 *
 * Why: HDF5 1.10 cannot recover from a write that fails. A failed flush leaves its cache in
 * a state where closing fails too ("slist already enabled?"), and a file whose close fails
 * is freed but keeps its ID, so HDF5 closes it again at exit and crashes (CVE-2020-10812,
 * fixed in 1.14) — `import csv` on a full disk died with SIGSEGV. So this driver keeps the
 * first errno of a failed write or truncate in the caller's slot and drops the writes after
 * it; HDF5 carries on as if all went well, every handle closes normally, and the writer,
 * which checks the slot after its writes and after closing, reports the system's reason and
 * removes the temporary. Reads are sec2's: past the end of the file they give zeros. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5_guard.h"

#if H5_VERSION_GE(1, 13, 0)
#include <H5FDdevelop.h>
#endif

typedef struct guard_info {
    int *error; /* the caller's slot for the first errno */
} guard_info;

typedef struct guard_file {
    H5FD_t pub; /* first: HDF5 sees a guard_file as its H5FD_t */
    int fd;
    haddr_t eoa, eof;
    int *error;
    dev_t dev;
    ino_t ino;
} guard_file;

#define MAXADDR (((haddr_t)1 << (8 * sizeof(off_t) - 1)) - 1)

static void failed(guard_file *f, int e)
{
    if (!*f->error)
        *f->error = e ? e : EIO;
}

static H5FD_t *guard_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr)
{
    const guard_info *info = H5Pget_driver_info(fapl);
    if (!name || !*name || !info || !info->error || maxaddr == 0 || maxaddr > MAXADDR)
        return NULL;
    int o = flags & H5F_ACC_RDWR ? O_RDWR : O_RDONLY;
    o |= (flags & H5F_ACC_TRUNC ? O_TRUNC : 0) | (flags & H5F_ACC_CREAT ? O_CREAT : 0) |
         (flags & H5F_ACC_EXCL ? O_EXCL : 0);
    int fd = open(name, o | O_CLOEXEC, 0666);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        *info->error = errno;
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    guard_file *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return NULL;
    }
    f->fd = fd;
    f->eof = (haddr_t)st.st_size;
    f->error = info->error;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return &f->pub;
}

static herr_t guard_close(H5FD_t *file)
{
    guard_file *f = (guard_file *)file;
    if (close(f->fd) != 0)
        failed(f, errno);
    free(f);
    return 0;
}

static int guard_cmp(const H5FD_t *a, const H5FD_t *b)
{
    const guard_file *x = (const guard_file *)a, *y = (const guard_file *)b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static herr_t guard_query(const H5FD_t *file, unsigned long *flags)
{
    (void)file;
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA |
             H5FD_FEAT_DATA_SIEVE | H5FD_FEAT_AGGREGATE_SMALLDATA;
    return 0;
}

static haddr_t guard_get_eoa(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const guard_file *)file)->eoa;
}

static herr_t guard_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr)
{
    (void)type;
    ((guard_file *)file)->eoa = addr;
    return 0;
}

static haddr_t guard_get_eof(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const guard_file *)file)->eof;
}

static herr_t guard_get_handle(H5FD_t *file, hid_t fapl, void **handle)
{
    (void)fapl;
    *handle = &((guard_file *)file)->fd;
    return 0;
}

static herr_t guard_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size,
                         void *buf)
{
    (void)type, (void)dxpl;
    guard_file *f = (guard_file *)file;
    if (addr == HADDR_UNDEF || addr > MAXADDR || size > MAXADDR - addr)
        return -1;
    unsigned char *p = buf;
    while (size > 0) {
        ssize_t got = pread(f->fd, p, size, (off_t)addr);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0) { /* past the end of the file */
            memset(p, 0, size);
            break;
        }
        p += got;
        addr += (haddr_t)got;
        size -= (size_t)got;
    }
    return 0;
}

static herr_t guard_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size,
                          const void *buf)
{
    (void)type, (void)dxpl;
    guard_file *f = (guard_file *)file;
    if (addr == HADDR_UNDEF || addr > MAXADDR || size > MAXADDR - addr)
        return -1;
    if (addr + size > f->eof)
        f->eof = addr + size; /* as HDF5 expects, whether or not the bytes got there */
    const unsigned char *p = buf;
    while (size > 0 && !*f->error) {
        ssize_t put = pwrite(f->fd, p, size, (off_t)addr);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0) {
            failed(f, put < 0 ? errno : ENOSPC);
            break;
        }
        p += put;
        addr += (haddr_t)put;
        size -= (size_t)put;
    }
    return 0;
}

static herr_t guard_truncate(H5FD_t *file, hid_t dxpl, hbool_t closing)
{
    (void)dxpl, (void)closing;
    guard_file *f = (guard_file *)file;
    if (f->eoa == f->eof)
        return 0;
    if (!*f->error && ftruncate(f->fd, (off_t)f->eoa) != 0)
        failed(f, errno);
    f->eof = f->eoa;
    return 0;
}

static const H5FD_class_t guard_class = {
#if H5_VERSION_GE(1, 13, 0)
    .version = H5FD_CLASS_VERSION,
#endif
#if H5_VERSION_GE(1, 12, 0)
    .value = 400, /* in the range HDF5 leaves to drivers of one program (256–511) */
#endif
    .name = "mmfuse-guard",
    .maxaddr = MAXADDR,
    .fc_degree = H5F_CLOSE_WEAK,
    .fapl_size = sizeof(guard_info),
    .open = guard_open,
    .close = guard_close,
    .cmp = guard_cmp,
    .query = guard_query,
    .get_eoa = guard_get_eoa,
    .set_eoa = guard_set_eoa,
    .get_eof = guard_get_eof,
    .get_handle = guard_get_handle,
    .read = guard_read,
    .write = guard_write,
    .truncate = guard_truncate,
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

hid_t mfi_h5_guarded_fapl(int *error)
{
    static hid_t driver = -1;
    /* registered once; again if the program closed the library (H5close) meanwhile */
    if (driver < 0 || H5Iis_valid(driver) <= 0)
        driver = H5FDregister(&guard_class);
    guard_info info = {error};
    hid_t fapl = driver >= 0 ? H5Pcreate(H5P_FILE_ACCESS) : -1;
    if (fapl >= 0 && H5Pset_driver(fapl, driver, &info) < 0) {
        H5Pclose(fapl);
        fapl = -1;
    }
    return fapl;
}

/* ---------------------------------------------------------------- checksummed datasets */
hid_t mfi_h5_checksummed(int rank, const hsize_t *dims, size_t elem_size, size_t chunk_bytes)
{
    /* a sample: whole when it fits the budget, else cut in halves along its longest axes */
    hsize_t chunk[H5S_MAX_RANK], sample = elem_size;
    for (int a = 1; a < rank; a++)
        sample *= (chunk[a] = dims[a] > 0 ? dims[a] : 1);
    while (sample > chunk_bytes) {
        int longest = 0;
        for (int a = 1; a < rank; a++)
            if (chunk[a] > 1 && (!longest || chunk[a] > chunk[longest]))
                longest = a;
        if (!longest)
            break;
        chunk[longest] = (chunk[longest] + 1) / 2;
        sample = elem_size;
        for (int a = 1; a < rank; a++)
            sample *= chunk[a];
    }
    /* then as many samples as fit, but no more than there are */
    chunk[0] = sample >= chunk_bytes ? 1 : chunk_bytes / sample;
    if (dims[0] > 0 && chunk[0] > dims[0])
        chunk[0] = dims[0];
    hid_t dcpl = rank > 0 && rank <= H5S_MAX_RANK ? H5Pcreate(H5P_DATASET_CREATE) : -1;
    if (dcpl >= 0 && (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0)) {
        H5Pclose(dcpl);
        return -1;
    }
    return dcpl;
}
