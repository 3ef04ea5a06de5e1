/* How mmfuse writes HDF5 files (h5_guard.c): through a file driver that keeps a failed
 * write (a full disk) in the caller's slot instead of reaching HDF5, whose 1.10 releases
 * cannot close a file after one without crashing at exit; and with arrays whose chunks carry
 * checksums. */
#ifndef MF_DATA_H5_GUARD_H
#define MF_DATA_H5_GUARD_H

#include <hdf5.h>

/* File access properties for H5Fcreate: *error receives the errno of the first failed
 * write or truncate (0 while all goes well; later writes are dropped). Check it after the
 * writes and after H5Fclose; *error must outlive the file. -1 on failure; H5Pclose it. */
hid_t mfi_h5_guarded_fapl(int *error);


/* Creation properties of an array dataset of `rank` dims (the first counts samples) whose
 * chunks carry a Fletcher-32 checksum, verified by HDF5 on every read (a flipped bit on disk
 * is an error, not a wrong number). A chunk holds about chunk_bytes: as many whole samples
 * as fit, or part of one sample, cut along its longest axes, when it alone is larger. -1 on
 * failure; H5Pclose it. */
hid_t mfi_h5_checksummed(int rank, const hsize_t *dims, size_t elem_size, size_t chunk_bytes);

#endif
