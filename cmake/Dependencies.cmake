# Every dependency is a Debian package; nothing is downloaded. scripts/test and scripts/demo install them.
find_package(OpenMP REQUIRED)
find_package(ZLIB REQUIRED)
# nlohmann-json (nlohmann-json3-dev), header-only: the safetensors header (core/safetensors.cpp), the trainer's
# --json metrics and the lab's results.json.
find_package(nlohmann_json 3 REQUIRED)

# OpenBLAS, the OpenMP build (libopenblas-openmp-dev). Debian's alternatives may point libopenblas.so at the
# pthread build when both are installed, so we link the OpenMP one by its own path and set an rpath to it.
# core/blas.cpp checks openblas_get_parallel() at run time so a wrong link is reported, not silently slow.
set(_nl_multiarch "${CMAKE_LIBRARY_ARCHITECTURE}")
if(NOT _nl_multiarch)
  set(_nl_multiarch "x86_64-linux-gnu")
endif()
find_library(NORMLAB_OPENBLAS_LIBRARY NAMES openblas
  PATHS /usr/lib/${_nl_multiarch}/openblas-openmp NO_DEFAULT_PATH)
find_path(NORMLAB_OPENBLAS_INCLUDE_DIR cblas.h
  PATHS /usr/include/${_nl_multiarch}/openblas-openmp NO_DEFAULT_PATH)
if(NOT NORMLAB_OPENBLAS_LIBRARY OR NOT NORMLAB_OPENBLAS_INCLUDE_DIR)
  message(FATAL_ERROR "normlab needs the OpenMP build of OpenBLAS: apt-get install libopenblas-openmp-dev")
endif()
get_filename_component(NORMLAB_OPENBLAS_DIR ${NORMLAB_OPENBLAS_LIBRARY} DIRECTORY)
set(CMAKE_BUILD_RPATH ${NORMLAB_OPENBLAS_DIR})
set(CMAKE_INSTALL_RPATH ${NORMLAB_OPENBLAS_DIR})
set(CMAKE_BUILD_RPATH_USE_ORIGIN OFF)

find_path(STB_INCLUDE_DIR stb_image.h PATHS /usr/include/stb /usr/include)
if(NOT STB_INCLUDE_DIR)
  message(FATAL_ERROR "normlab needs stb_image: apt-get install libstb-dev")
endif()
