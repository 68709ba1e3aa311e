# The Temporal API as C++: target weft_temporal_api (weft::temporal_api), a static library of the
# protobuf messages and the gRPC stub of temporal.api.workflowservice.v1.WorkflowService.
#
# Configure time: the protos come from the npm package below at a pinned version and checksum
# (`npm pack` into the build dir, kept there, so a reconfigure or rebuild never fetches again), are
# unpacked into the build dir, patched (the `namespace` package, see below), and the import closure
# of workflowservice/v1/service.proto is computed. Build time: Debian's protoc and grpc_cpp_plugin
# generate the sources into the build dir and they are compiled once. Nothing here is committed.
#
# Offline: -DWEFT_TEMPORAL_API_TARBALL=/path/to/temporalio-core-bridge-<version>.tgz (same checksum).

set(WEFT_TEMPORAL_API_PACKAGE "@temporalio/core-bridge")
set(WEFT_TEMPORAL_API_VERSION "1.24.0")
set(WEFT_TEMPORAL_API_SHA256 "5f58de2e98bdc4711be3cbb06cc08bc39cb274cbbac41d02f0352bfe1630a8f7")
set(WEFT_TEMPORAL_API_TARBALL "" CACHE FILEPATH
    "An already downloaded temporalio-core-bridge-${WEFT_TEMPORAL_API_VERSION}.tgz; empty = npm pack")

include(${CMAKE_CURRENT_LIST_DIR}/grpc.cmake)
weft_grpc_tools(Temporal WEFT_TEMPORAL)

set(_root ${CMAKE_BINARY_DIR}/codegen/temporal-api-${WEFT_TEMPORAL_API_VERSION})
set(_tgz ${_root}/temporalio-core-bridge-${WEFT_TEMPORAL_API_VERSION}.tgz)
set(_protos ${_root}/protos)
set(_gen ${_root}/gen)

# 1. The tarball, fetched once per build dir and checked.
if(NOT EXISTS ${_tgz})
  file(MAKE_DIRECTORY ${_root}/download)
  if(WEFT_TEMPORAL_API_TARBALL)
    file(COPY_FILE ${WEFT_TEMPORAL_API_TARBALL} ${_root}/download/package.tgz)
  else()
    find_program(WEFT_NPM npm)
    if(NOT WEFT_NPM)
      message(FATAL_ERROR "weft: npm is needed once to fetch the Temporal API protos "
                          "(${WEFT_TEMPORAL_API_PACKAGE}@${WEFT_TEMPORAL_API_VERSION}); install npm or pass "
                          "-DWEFT_TEMPORAL_API_TARBALL=<the .tgz>")
    endif()
    message(STATUS "weft: fetching ${WEFT_TEMPORAL_API_PACKAGE}@${WEFT_TEMPORAL_API_VERSION} with npm pack")
    execute_process(
      COMMAND ${WEFT_NPM} pack --silent --pack-destination ${_root}/download
              ${WEFT_TEMPORAL_API_PACKAGE}@${WEFT_TEMPORAL_API_VERSION}
      WORKING_DIRECTORY ${_root}/download
      RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "weft: npm pack ${WEFT_TEMPORAL_API_PACKAGE}@${WEFT_TEMPORAL_API_VERSION} failed "
                          "(${_rc}): ${_err}")
    endif()
    file(RENAME ${_root}/download/temporalio-core-bridge-${WEFT_TEMPORAL_API_VERSION}.tgz
         ${_root}/download/package.tgz)
  endif()
  file(SHA256 ${_root}/download/package.tgz _sha)
  if(NOT _sha STREQUAL WEFT_TEMPORAL_API_SHA256)
    message(FATAL_ERROR "weft: ${WEFT_TEMPORAL_API_PACKAGE}@${WEFT_TEMPORAL_API_VERSION} has SHA-256 ${_sha}, "
                        "expected ${WEFT_TEMPORAL_API_SHA256}")
  endif()
  file(RENAME ${_root}/download/package.tgz ${_tgz})
endif()

# 2. The protos, unpacked and patched once per tarball (the stamp records the patch level).
set(_patch_level 1)
set(_stamp ${_protos}/.weft-stamp)
set(_stamp_text "${WEFT_TEMPORAL_API_SHA256} patch ${_patch_level}")
set(_have_stamp "")
if(EXISTS ${_stamp})
  file(READ ${_stamp} _have_stamp)
endif()
if(NOT _have_stamp STREQUAL _stamp_text)
  file(REMOVE_RECURSE ${_protos} ${_root}/unpack)
  set(_upstream package/sdk-core/crates/protos/protos/api_upstream)
  file(ARCHIVE_EXTRACT INPUT ${_tgz} DESTINATION ${_root}/unpack PATTERNS "${_upstream}/*")
  file(RENAME ${_root}/unpack/${_upstream} ${_protos})
  file(REMOVE_RECURSE ${_root}/unpack)
  # Its own copies of the well-known types would shadow libprotobuf-dev's, which the runtime matches.
  file(REMOVE_RECURSE ${_protos}/google/protobuf)
  # `package temporal.api.namespace.v1` becomes `namespace temporal::api::namespace {` with protoc
  # 3.21 (protoc >= 27 escapes it itself). Renaming the package is wire-compatible: RPC paths and
  # message encodings carry no package of namespace messages.
  file(GLOB_RECURSE _all RELATIVE ${_protos} ${_protos}/*.proto)
  foreach(f IN LISTS _all)
    file(READ ${_protos}/${f} _text)
    string(FIND "${_text}" "temporal.api.namespace.v1" _at)
    if(NOT _at EQUAL -1)
      string(REPLACE "temporal.api.namespace.v1" "temporal.api.namespace_.v1" _text "${_text}")
      file(WRITE ${_protos}/${f} "${_text}")
    endif()
  endforeach()
  file(WRITE ${_stamp} "${_stamp_text}")
endif()

# 3. The import closure of the workflow service, in a stable order.
weft_proto_closure(_closure ${_protos} "the Temporal API (${WEFT_TEMPORAL_API_PACKAGE})"
                   temporal/api/workflowservice/v1/service.proto)
list(LENGTH _closure _n)
message(STATUS "weft: Temporal API ${WEFT_TEMPORAL_API_VERSION}: ${_n} proto files in the closure of the workflow service")

# 4. Generation (build time) and the library.
weft_grpc_library(weft_temporal_api PROTOS_DIR ${_protos} GEN_DIR ${_gen} PROTOS ${_closure}
                  SERVICES temporal/api/workflowservice/v1/service DEPENDS ${_stamp} WHAT "the Temporal API")
# worker/v1 has a field `linux`, which GCC's GNU modes (CMake's default gnu++20) predefine as a macro:
# every translation unit that includes the generated headers must not have it.
target_compile_options(weft_temporal_api PUBLIC -Ulinux)
