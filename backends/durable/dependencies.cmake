# What weft::durable needs from the system, found when the backend is configured and again by
# weftConfig.cmake in a consumer's project (see cmake/weft_backend.cmake): SQLite 3 through CMake's
# own FindSQLite3 (Debian's libsqlite3-dev ships the header and library, no CMake package).
if(NOT TARGET SQLite::SQLite3)
  find_package(SQLite3 3.24 QUIET)  # 3.24: INSERT ... ON CONFLICT DO NOTHING
endif()
if(NOT TARGET SQLite::SQLite3)
  set(_weft_missing "SQLite 3.24 or later (Debian: libsqlite3-dev)")
endif()
