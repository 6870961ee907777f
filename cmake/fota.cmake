# fota.cmake: builds the fota Rust library with cargo and exports it to CMake.
#
# Use from a firmware project, either
#
#   add_subdirectory(path/to/fota)            # the top-level CMakeLists includes this file
# or
#   include(path/to/fota/cmake/fota.cmake)
#
# then
#
#   target_link_libraries(app PRIVATE fota::fota)
#
# which links libfota.a and adds fota/include (fota.h) to the include path.
#
# Cache variables:
#   FOTA_RUST_TARGET  Rust target triple ("" = the host; the arm-none-eabi.cmake
#                     toolchain file sets thumbv7em-none-eabihf).
#   FOTA_FEATURES     cargo features, separated by ';' or ',' ("" = the crate's
#                     default features; "none" = no features at all, e.g. no TLS;
#                     otherwise --no-default-features is passed).
#   FOTA_CARGO        the cargo executable.
#   FOTA_CARGO_FLAGS  extra arguments for cargo (e.g. --locked, --offline).
#   FOTA_LIBC_MEM     ON (default for bare-metal targets, "*-none-*"): remove
#                     compiler_builtins' memcpy/memmove/memset/memcmp/bcmp/
#                     strlen/__aeabi_mem* from libfota.a, so that the
#                     firmware's C library provides them (smaller, and shared
#                     with the firmware; see cmake/fota-libc-mem.cmake). The
#                     firmware must then link a libc (newlib, picolibc). OFF:
#                     the archive is self-contained; with libfota.a before
#                     libc on the link line its own copies are used.
#
# The archive is built with `cargo rustc --release --crate-type staticlib`:
# the crate declares crate-type = ["rlib"] and LTO is silently off for
# ["staticlib", "rlib"], while `cargo rustc --crate-type staticlib` gives a
# single-crate-type build, so the release profile's lto = true applies.
# Cargo gets its own target directory inside the CMake binary directory, so it
# never contends with `cargo test` / `cargo build` in the source tree.

include_guard(GLOBAL)
cmake_minimum_required(VERSION 3.18)

get_filename_component(FOTA_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

set(FOTA_RUST_TARGET "" CACHE STRING
    "Rust target triple for libfota.a (empty: the host)")
set(FOTA_FEATURES "" CACHE STRING
    "Cargo features of fota, ';' or ',' separated (empty: default features; none: no features)")
set(FOTA_CARGO_FLAGS "" CACHE STRING
    "Extra cargo arguments for the fota build, ';' separated (e.g. --locked)")
if(FOTA_RUST_TARGET MATCHES "-none-")
  set(_fota_libc_mem_default ON)
else()
  set(_fota_libc_mem_default OFF)
endif()
option(FOTA_LIBC_MEM "Take memcpy & co. from the firmware's libc, not from libfota.a"
       ${_fota_libc_mem_default})
find_program(FOTA_CARGO cargo
    HINTS "$ENV{CARGO_HOME}/bin" "$ENV{HOME}/.cargo/bin"
    DOC "cargo, used to build libfota.a")
if(NOT FOTA_CARGO)
  message(FATAL_ERROR "fota: cargo not found (install Rust, or set FOTA_CARGO)")
endif()

set(FOTA_CARGO_TARGET_DIR "${CMAKE_CURRENT_BINARY_DIR}/fota-cargo")

# Archive location: <target-dir>/release for the host, <target-dir>/<T>/release
# for an explicit target. Cargo names the archive fota.lib for MSVC hosts.
if(FOTA_RUST_TARGET)
  set(_fota_target_args --target "${FOTA_RUST_TARGET}")
  set(_fota_out_dir "${FOTA_CARGO_TARGET_DIR}/${FOTA_RUST_TARGET}/release")
  if(FOTA_RUST_TARGET MATCHES "msvc")
    set(_fota_archive_name "fota.lib")
  else()
    set(_fota_archive_name "libfota.a")
  endif()
else()
  set(_fota_target_args "")
  set(_fota_out_dir "${FOTA_CARGO_TARGET_DIR}/release")
  if(MSVC)
    set(_fota_archive_name "fota.lib")
  else()
    set(_fota_archive_name "libfota.a")
  endif()
endif()
set(FOTA_LIBRARY "${_fota_out_dir}/${_fota_archive_name}")

string(STRIP "${FOTA_FEATURES}" _fota_features)
string(REPLACE ";" "," _fota_features "${_fota_features}")
string(REPLACE " " "" _fota_features "${_fota_features}")
if(_fota_features STREQUAL "none")
  set(_fota_feature_args --no-default-features)
elseif(_fota_features)
  set(_fota_feature_args --no-default-features --features "${_fota_features}")
else()
  set(_fota_feature_args "")
endif()

# Everything cargo reads. CONFIGURE_DEPENDS re-globs at build time, so a new
# module file is noticed without re-running cmake by hand.
file(GLOB_RECURSE _fota_rust_sources CONFIGURE_DEPENDS
    "${FOTA_SOURCE_DIR}/src/*.rs")
set(_fota_depends ${_fota_rust_sources} "${FOTA_SOURCE_DIR}/Cargo.toml")
foreach(_f Cargo.lock build.rs .cargo/config.toml)
  if(EXISTS "${FOTA_SOURCE_DIR}/${_f}")
    list(APPEND _fota_depends "${FOTA_SOURCE_DIR}/${_f}")
  endif()
endforeach()

# A file whose content is the build configuration: changing FOTA_FEATURES or
# FOTA_RUST_TARGET rewrites it, which re-runs cargo with every generator (the
# Makefile generators do not re-run a custom command just because its command
# line changed). file(CONFIGURE) leaves it untouched when nothing changed.
set(_fota_config_stamp "${FOTA_CARGO_TARGET_DIR}/cmake-config.txt")
file(CONFIGURE OUTPUT "${_fota_config_stamp}"
     CONTENT "target=${FOTA_RUST_TARGET}\nfeatures=${_fota_features}\nflags=${FOTA_CARGO_FLAGS}\nlibc_mem=${FOTA_LIBC_MEM}\n")

if(FOTA_RUST_TARGET)
  set(_fota_target_desc "${FOTA_RUST_TARGET}")
else()
  set(_fota_target_desc "host")
endif()
if(_fota_features)
  set(_fota_features_desc "${_fota_features}")
else()
  set(_fota_features_desc "default")
endif()

# With FOTA_LIBC_MEM the firmware links a copy without the mem* members;
# cargo's own archive stays as cargo made it.
set(_fota_post_build "")
set(_fota_cargo_archive "${FOTA_LIBRARY}")
if(FOTA_LIBC_MEM)
  if(NOT CMAKE_READELF)
    message(FATAL_ERROR "fota: FOTA_LIBC_MEM needs readelf (CMAKE_READELF)")
  endif()
  set(FOTA_LIBRARY "${FOTA_CARGO_TARGET_DIR}/libc-mem/${_fota_archive_name}")
  set(_fota_post_build
      COMMAND "${CMAKE_COMMAND}" -E copy "${_fota_cargo_archive}" "${FOTA_LIBRARY}"
      COMMAND "${CMAKE_COMMAND}" "-DARCHIVE=${FOTA_LIBRARY}"
              "-DAR=${CMAKE_AR}" "-DREADELF=${CMAKE_READELF}"
              -P "${CMAKE_CURRENT_LIST_DIR}/fota-libc-mem.cmake")
endif()

add_custom_command(
  OUTPUT "${FOTA_LIBRARY}"
  COMMAND "${FOTA_CARGO}" rustc
          --manifest-path "${FOTA_SOURCE_DIR}/Cargo.toml"
          --target-dir "${FOTA_CARGO_TARGET_DIR}"
          --release --lib --crate-type staticlib
          ${_fota_target_args} ${_fota_feature_args} ${FOTA_CARGO_FLAGS}
  # Cargo leaves the archive alone when it finds nothing to rebuild (e.g. only
  # Cargo.lock was touched); touch it so the build tool sees it up to date.
  COMMAND "${CMAKE_COMMAND}" -E touch_nocreate "${_fota_cargo_archive}"
  ${_fota_post_build}
  DEPENDS ${_fota_depends} "${_fota_config_stamp}" "${CMAKE_CURRENT_LIST_DIR}/fota-libc-mem.cmake"
  WORKING_DIRECTORY "${FOTA_SOURCE_DIR}"
  COMMENT "cargo: building ${_fota_archive_name} (target: ${_fota_target_desc}; features: ${_fota_features_desc})"
  USES_TERMINAL
  VERBATIM)
add_custom_target(fota_cargo DEPENDS "${FOTA_LIBRARY}")

add_library(fota STATIC IMPORTED GLOBAL)
set_target_properties(fota PROPERTIES
  IMPORTED_LOCATION "${FOTA_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${FOTA_SOURCE_DIR}/include")
add_dependencies(fota fota_cargo)
add_library(fota::fota ALIAS fota)

# Native libraries the archive needs. `cargo rustc --release --crate-type
# staticlib -- --print native-static-libs` prints an empty list for this
# #![no_std] crate, on the host and on thumbv7em-none-eabihf alike: the only
# undefined symbols are memcpy/memset/memcmp/bcmp-style helpers, which libc
# (host; on bare metal too with FOTA_LIBC_MEM) or the archive's own
# compiler_builtins (Cortex-M without it) provide. Nothing to add on either
# side; a C program linking fota::fota already links libc.
set(FOTA_NATIVE_LIBS "")
if(NOT CMAKE_CROSSCOMPILING AND FOTA_NATIVE_LIBS)
  set_property(TARGET fota APPEND PROPERTY INTERFACE_LINK_LIBRARIES ${FOTA_NATIVE_LIBS})
endif()

unset(_fota_target_args)
unset(_fota_feature_args)
unset(_fota_features)
unset(_fota_out_dir)
unset(_fota_archive_name)
unset(_fota_rust_sources)
unset(_fota_depends)
unset(_fota_config_stamp)
unset(_fota_target_desc)
unset(_fota_features_desc)
unset(_fota_post_build)
unset(_fota_cargo_archive)
unset(_fota_libc_mem_default)
