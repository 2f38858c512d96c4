/* src/common/backend.h — choosing the op backend from --device. */
#ifndef LLMPI_BACKEND_H
#define LLMPI_BACKEND_H

#include "ops.h"

/* "cpu", "cuda" or "auto" (CUDA when this build has it and a GPU is present,
 * else CPU with a one-line notice on stderr). NULL + err_set when the named
 * device is unavailable. */
const struct ops *backend_select(const char *device);

#endif
