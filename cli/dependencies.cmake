# What weft::cli needs from the system, found when it is configured and again by weftConfig.cmake in a
# consumer's project (see cmake/weft_backend.cmake): CLI11 (its CMake package) and cpp-httplib
# (pkg-config).
if(NOT TARGET CLI11::CLI11)
  find_package(CLI11 2.1 QUIET CONFIG)
endif()
if(NOT TARGET PkgConfig::weft_httplib)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(weft_httplib QUIET IMPORTED_TARGET GLOBAL cpp-httplib>=0.11)
  endif()
endif()
if(NOT TARGET CLI11::CLI11)
  set(_weft_missing "CLI11 2.1 or later (Debian: libcli11-dev)")
elseif(NOT TARGET PkgConfig::weft_httplib)
  set(_weft_missing "cpp-httplib 0.11 or later (pkg-config module cpp-httplib; Debian: libcpp-httplib-dev)")
endif()
