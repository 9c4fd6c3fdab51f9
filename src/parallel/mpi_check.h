// Internal: MPI's C API (never its deprecated C++ bindings) and the checked-call macro of the
// MPI code in src/parallel. Include only where HYSCALE_WITH_MPI is defined.
#pragma once
#ifdef HYSCALE_WITH_MPI
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <string>

#include "core/error.h"

// Throws hyscale::Error naming the call and MPI's message when it does not return MPI_SUCCESS.
#define HS_MPI_CHECK(call)                                  \
  do {                                                      \
    int rc_ = (call);                                       \
    if (rc_ != MPI_SUCCESS) {                               \
      char msg_[MPI_MAX_ERROR_STRING];                      \
      int len_ = 0;                                         \
      MPI_Error_string(rc_, msg_, &len_);                   \
      HS_FAIL(#call, " failed: ", std::string(msg_, len_)); \
    }                                                       \
  } while (0)
#endif
