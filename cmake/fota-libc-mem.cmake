# fota-libc-mem.cmake: removes compiler_builtins' memcpy/memmove/memset/
# memcmp/bcmp/strlen and __aeabi_mem* from a libfota.a, so that the
# firmware's C library provides them (run by fota.cmake with cmake -P).
#
#   cmake -DARCHIVE=libfota.a -DAR=<ar> -DREADELF=<readelf> -P fota-libc-mem.cmake
#
# Why: with libfota.a before libc on the link line (the usual order), the
# linker takes these helpers from the archive (they are weak there, but an
# archive member is never swapped for another one), and compiler_builtins'
# versions are larger than newlib's (memmove 1574 B against 256 B measured on
# Cortex-M4). Each helper is a member of its own; a member is removed only
# when every symbol it defines is one of them, so nothing else can go missing.
if(NOT ARCHIVE OR NOT AR OR NOT READELF)
  message(FATAL_ERROR "fota-libc-mem.cmake: ARCHIVE, AR and READELF are required")
endif()
set(_mem_regex "^(memcpy|memmove|memset|memcmp|bcmp|strlen|__aeabi_mem(cpy|move|set|clr)[48]?)$")

execute_process(COMMAND "${READELF}" -sW "${ARCHIVE}"
                OUTPUT_VARIABLE _symbols RESULT_VARIABLE _rc ERROR_QUIET)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "fota-libc-mem.cmake: ${READELF} -s ${ARCHIVE} failed")
endif()
string(REPLACE ";" "\\;" _symbols "${_symbols}")
string(REPLACE "\n" ";" _lines "${_symbols}")

set(_remove "")
set(_member "")
set(_only_mem FALSE)
set(_any FALSE)
foreach(_line IN LISTS _lines)
  if(_line MATCHES "^File: .*\\((compiler_builtins[^)]*)\\)$")
    if(_member AND _only_mem AND _any)
      list(APPEND _remove "${_member}")
    endif()
    set(_member "${CMAKE_MATCH_1}")
    set(_only_mem TRUE)
    set(_any FALSE)
  elseif(_line MATCHES "^File: ")
    if(_member AND _only_mem AND _any)
      list(APPEND _remove "${_member}")
    endif()
    set(_member "")
  elseif(_member AND _line MATCHES "^ *[0-9]+: [0-9a-f]+ +[0-9]+ +[A-Z]+ +(GLOBAL|WEAK) +[A-Z]+ +([0-9]+|ABS|COM) +([^ ]+)$")
    # A defined global or weak symbol (undefined ones have Ndx UND).
    if(CMAKE_MATCH_3 MATCHES "${_mem_regex}")
      set(_any TRUE)
    else()
      set(_only_mem FALSE)
    endif()
  endif()
endforeach()
if(_member AND _only_mem AND _any)
  list(APPEND _remove "${_member}")
endif()

if(_remove)
  # GNU ar's LTO plugin cannot read Rust's bitcode sections and says so
  # for every member: shown only when ar fails.
  execute_process(COMMAND "${AR}" d "${ARCHIVE}" ${_remove}
                  RESULT_VARIABLE _rc ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "fota-libc-mem.cmake: ${AR} d failed:\n${_err}")
  endif()
endif()
list(LENGTH _remove _n)
message(STATUS "fota: ${_n} compiler_builtins mem* members removed from ${ARCHIVE}; libc provides them")
