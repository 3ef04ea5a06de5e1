/* The file driver of the HDF5 files mmfuse writes (h5_guard.c): a failed write (a full
 * disk) is kept in the caller's slot instead of reaching HDF5, whose 1.10 releases cannot
 * close a file after one without crashing at exit. */
#ifndef MF_DATA_H5_GUARD_H
#define MF_DATA_H5_GUARD_H

#include <hdf5.h>

/* File access properties for H5Fcreate: *error receives the errno of the first failed
 * write or truncate (0 while all goes well; later writes are dropped). Check it after the
 * writes and after H5Fclose; *error must outlive the file. -1 on failure; H5Pclose it. */
hid_t mfi_h5_guarded_fapl(int *error);

#endif
