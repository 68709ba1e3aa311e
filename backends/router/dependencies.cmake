# What weft::router needs from the system, found when it is configured and again by weftConfig.cmake
# in a consumer's project (see cmake/weft_backend.cmake): cpp-httplib (pkg-config) for OFREP, found
# as weft::cli finds it.
if(NOT TARGET PkgConfig::weft_httplib)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(weft_httplib QUIET IMPORTED_TARGET GLOBAL cpp-httplib>=0.11)
  endif()
endif()
if(NOT TARGET PkgConfig::weft_httplib)
  set(_weft_missing "cpp-httplib 0.11 or later (pkg-config module cpp-httplib; Debian: libcpp-httplib-dev)")
endif()
