# What weft::durable needs from the system, found when the backend is configured and again by
# weftConfig.cmake in a consumer's project (see cmake/weft_backend.cmake): SQLite 3 through CMake's
# own FindSQLite3 (Debian's libsqlite3-dev ships the header and library, no CMake package), and
# libpq, PostgreSQL's client library, through pkg-config (Debian: libpq-dev ships libpq.pc).
if(NOT TARGET SQLite::SQLite3)
  find_package(SQLite3 3.24 QUIET)  # 3.24: INSERT ... ON CONFLICT DO NOTHING
endif()
if(NOT TARGET SQLite::SQLite3)
  set(_weft_missing "SQLite 3.24 or later (Debian: libsqlite3-dev)")
endif()
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND AND NOT TARGET PkgConfig::weft_libpq)
  pkg_check_modules(weft_libpq QUIET IMPORTED_TARGET libpq>=14)
endif()
if(NOT TARGET PkgConfig::weft_libpq)
  if(_weft_missing)
    string(APPEND _weft_missing " and ")
  endif()
  string(APPEND _weft_missing "libpq 14 or later (pkg-config module libpq; Debian: libpq-dev)")
endif()
