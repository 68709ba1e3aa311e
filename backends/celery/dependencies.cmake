# What weft::celery needs from the system, found when the backend is configured and again by
# weftConfig.cmake in a consumer's project (see cmake/weft_backend.cmake): hiredis, through pkg-config
# (Debian's libhiredis-dev ships hiredis.pc; its HiredisConfig.cmake defines no target); and OpenSSL,
# for rediss:// (hiredis 0.14 has no TLS of its own).
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND AND NOT TARGET PkgConfig::weft_hiredis)
  pkg_check_modules(weft_hiredis QUIET IMPORTED_TARGET hiredis)
endif()
if(NOT TARGET PkgConfig::weft_hiredis)
  set(_weft_missing "hiredis (pkg-config module hiredis; Debian: libhiredis-dev)")
endif()
find_package(OpenSSL 3 QUIET)
if(NOT TARGET OpenSSL::SSL)
  if(_weft_missing)
    string(APPEND _weft_missing " and ")
  endif()
  string(APPEND _weft_missing "OpenSSL 3 (Debian: libssl-dev)")
endif()
