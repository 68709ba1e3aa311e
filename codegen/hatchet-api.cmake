# The Hatchet engine's gRPC API as C++: target weft_hatchet_api (weft::hatchet_api), a static library of
# the protobuf messages and the gRPC stubs of `Dispatcher` (workers) and `v1.AdminService`
# (registration, triggers, run details, cancellation).
#
# Configure time: the protos come from Hatchet's Go module at a pinned version, through the Go module
# cache (`go mod download -json`, which checks the module against go.sum's database and prints its h1:
# hash, compared with the pin below). The import closure of the roots is copied into the build dir and
# its SHA-256 (the files concatenated in sorted order) is checked too. Build time: Debian's protoc and
# grpc_cpp_plugin generate the sources into the build dir; they are compiled once. Nothing here is
# committed.
#
# Offline: -DWEFT_HATCHET_API_DIR=/path/to/hatchet@v0.104.7 (a module tree; the SHA-256 still applies).

set(WEFT_HATCHET_API_MODULE "github.com/hatchet-dev/hatchet")
set(WEFT_HATCHET_API_VERSION "v0.104.7")
set(WEFT_HATCHET_API_H1 "h1:QCW4BobdfXANNTYlqyAtlkCoJhKXNGxQVEOWYy17a+Q=")
set(WEFT_HATCHET_API_SHA256 "b410c0a97fdd531beae2173cbe15244fbb5ccd187b61196b22460f114605b07a")
set(WEFT_HATCHET_API_DIR "" CACHE PATH
    "An already downloaded ${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION} tree; empty = go mod download")
set(_roots dispatcher/dispatcher.proto v1/workflows.proto)
set(_services dispatcher/dispatcher v1/workflows)

include(${CMAKE_CURRENT_LIST_DIR}/grpc.cmake)
weft_grpc_tools(Hatchet WEFT_HATCHET)

set(_root ${CMAKE_BINARY_DIR}/codegen/hatchet-api-${WEFT_HATCHET_API_VERSION})
set(_protos ${_root}/protos)
set(_gen ${_root}/gen)
set(_stamp ${_protos}/.weft-stamp)
set(_stamp_text "${WEFT_HATCHET_API_SHA256}")
set(_have_stamp "")
if(EXISTS ${_stamp})
  file(READ ${_stamp} _have_stamp)
endif()

# 1. The module, from the Go module cache (fetched once per machine), checked against the pin.
if(NOT _have_stamp STREQUAL _stamp_text)
  set(_module ${WEFT_HATCHET_API_DIR})
  if(NOT _module)
    find_program(WEFT_GO go)
    if(NOT WEFT_GO)
      message(FATAL_ERROR "weft: Go is needed once to fetch the Hatchet API protos "
                          "(${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION}); install golang or pass "
                          "-DWEFT_HATCHET_API_DIR=<the module tree>")
    endif()
    # Outside any module (an empty dir), so the download is exactly the pinned module; GOFLAGS as
    # scripts/services.d/hatchet.sh sets them.
    file(MAKE_DIRECTORY ${_root}/download)
    message(STATUS "weft: fetching ${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION} with go mod download")
    execute_process(
      COMMAND ${CMAKE_COMMAND} -E env GOFLAGS= ${WEFT_GO} mod download -json
              ${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION}
      WORKING_DIRECTORY ${_root}/download
      RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "weft: go mod download ${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION} failed "
                          "(${_rc}): ${_err}${_out}")
    endif()
    string(JSON _module GET "${_out}" Dir)
    string(JSON _sum GET "${_out}" Sum)
    if(NOT _sum STREQUAL WEFT_HATCHET_API_H1)
      message(FATAL_ERROR "weft: ${WEFT_HATCHET_API_MODULE}@${WEFT_HATCHET_API_VERSION} has ${_sum}, "
                          "expected ${WEFT_HATCHET_API_H1}")
    endif()
  endif()
  set(_contracts ${_module}/api-contracts)

  # 2. The import closure of the roots, copied (the module cache is read-only) and checked.
  weft_proto_closure(_closure ${_contracts} "the Hatchet API" ${_roots})
  file(REMOVE_RECURSE ${_protos})
  set(_all "")
  foreach(f IN LISTS _closure)
    file(READ ${_contracts}/${f} _text)
    string(APPEND _all "${_text}")
    file(WRITE ${_protos}/${f} "${_text}")
  endforeach()
  string(SHA256 _sha "${_all}")
  if(NOT _sha STREQUAL WEFT_HATCHET_API_SHA256)
    file(REMOVE_RECURSE ${_protos})
    message(FATAL_ERROR "weft: the Hatchet API protos (${_closure}) have SHA-256 ${_sha}, "
                        "expected ${WEFT_HATCHET_API_SHA256}")
  endif()
  file(WRITE ${_stamp} "${_stamp_text}")
endif()

file(GLOB_RECURSE _closure RELATIVE ${_protos} ${_protos}/*.proto)
list(SORT _closure)
list(LENGTH _closure _n)
message(STATUS "weft: Hatchet API ${WEFT_HATCHET_API_VERSION}: ${_n} proto files (${_closure})")

# 3. Generation (build time) and the library.
weft_grpc_library(weft_hatchet_api PROTOS_DIR ${_protos} GEN_DIR ${_gen} PROTOS ${_closure}
                  SERVICES ${_services} DEPENDS ${_stamp} WHAT "the Hatchet API")
