// The whole public API of normlab in one include: #include <normlab/normlab.h>
#pragma once

#include "core/dtype.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/npy.h"
#include "core/ops.h"
#include "core/random.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "layers/module.h"
#include "core/normalization.h"
#include "layers/normalization.h"
