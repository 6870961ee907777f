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
#   FOTA_RX_BUF       bytes of the receive buffer: 4096, 16384 or 65536 ("" =
#                     65536 for the host, 4096 for a Rust target). Becomes the
#                     cargo feature rx-16k / rx-64k and the matching C macro
#                     (FOTA_RX_16K / FOTA_RX_64K) on fota::fota, so fota.h's
#                     FOTA_RX_BUF is the library's.
#   FOTA_CARGO_PROFILE cargo profile ("" = "host" for the host: opt-level 3,
#                     for speed; "release" for a Rust target: opt-level "z",
#                     for size). Both have LTO on.
#   FOTA_TARGET_FEATURES rustc target features for the whole crate graph,
#                     e.g. "+aes,+pclmulqdq" ("auto" = that pair for an x86_64
#                     host build whose CPU has both, per /proc/cpuinfo, so the
#                     AES-GCM of https inlines AES-NI/CLMUL instead of picking
#                     them at run time; nothing otherwise. "none" = nothing:
#                     the archive then runs on any x86_64 CPU). Passed as
#                     cargo's build.rustflags, which RUSTFLAGS overrides.
#   FOTA_CARGO        the cargo executable.
#   FOTA_CARGO_FLAGS  extra arguments for cargo (e.g. --locked, --offline).
#
# With tls-4k-records in FOTA_FEATURES, fota::fota also carries the C macro
# FOTA_TLS_4K_RECORDS (fota.h's FOTA_TLS_RX_BUF is then 4416).
#
# The archive is built with `cargo rustc --profile P --crate-type staticlib`:
# the crate declares crate-type = ["rlib"] and LTO is silently off for
# ["staticlib", "rlib"], while `cargo rustc --crate-type staticlib` gives a
# single-crate-type build, so the profile's lto = true applies.
# Cargo gets its own target directory inside the CMake binary directory, so it
# never contends with `cargo test` / `cargo build` in the source tree.

include_guard(GLOBAL)
cmake_minimum_required(VERSION 3.18)

get_filename_component(FOTA_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

set(FOTA_RUST_TARGET "" CACHE STRING
    "Rust target triple for libfota.a (empty: the host)")
set(FOTA_FEATURES "" CACHE STRING
    "Cargo features of fota, ';' or ',' separated (empty: default features; none: no features)")
set(FOTA_RX_BUF "" CACHE STRING
    "Receive buffer bytes: 4096, 16384 or 65536 (empty: 65536 for the host, 4096 for a Rust target)")
set(FOTA_CARGO_PROFILE "" CACHE STRING
    "Cargo profile of libfota.a (empty: host for the host build, release for a Rust target)")
set(FOTA_TARGET_FEATURES "auto" CACHE STRING
    "rustc target features of libfota.a (auto: +aes,+pclmulqdq on an x86_64 host that has them; none)")
set(FOTA_CARGO_FLAGS "" CACHE STRING
    "Extra cargo arguments for the fota build, ';' separated (e.g. --locked)")
find_program(FOTA_CARGO cargo
    HINTS "$ENV{CARGO_HOME}/bin" "$ENV{HOME}/.cargo/bin"
    DOC "cargo, used to build libfota.a")
if(NOT FOTA_CARGO)
  message(FATAL_ERROR "fota: cargo not found (install Rust, or set FOTA_CARGO)")
endif()

set(FOTA_CARGO_TARGET_DIR "${CMAKE_CURRENT_BINARY_DIR}/fota-cargo")

# The host build is for speed, firmware for size (Cargo.toml's profiles).
if(FOTA_CARGO_PROFILE)
  set(_fota_profile "${FOTA_CARGO_PROFILE}")
elseif(FOTA_RUST_TARGET)
  set(_fota_profile "release")
else()
  set(_fota_profile "host")
endif()
# Cargo's output directory of a profile: its name, except dev's.
if(_fota_profile STREQUAL "dev")
  set(_fota_profile_dir "debug")
else()
  set(_fota_profile_dir "${_fota_profile}")
endif()

# Archive location: <target-dir>/<profile> for the host,
# <target-dir>/<T>/<profile> for an explicit target. Cargo names the archive
# fota.lib for MSVC hosts.
if(FOTA_RUST_TARGET)
  set(_fota_target_args --target "${FOTA_RUST_TARGET}")
  set(_fota_out_dir "${FOTA_CARGO_TARGET_DIR}/${FOTA_RUST_TARGET}/${_fota_profile_dir}")
  if(FOTA_RUST_TARGET MATCHES "msvc")
    set(_fota_archive_name "fota.lib")
  else()
    set(_fota_archive_name "libfota.a")
  endif()
else()
  set(_fota_target_args "")
  set(_fota_out_dir "${FOTA_CARGO_TARGET_DIR}/${_fota_profile_dir}")
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
if(_fota_features MATCHES "(^|,)rx-")
  message(FATAL_ERROR "fota: choose the receive buffer with FOTA_RX_BUF, not with FOTA_FEATURES")
endif()

# The receive buffer: a cargo feature for the library, the macro that selects
# the same FOTA_RX_BUF in fota.h for the C code (cbindgen.toml [defines]).
if(FOTA_RX_BUF)
  set(_fota_rx "${FOTA_RX_BUF}")
elseif(FOTA_RUST_TARGET)
  set(_fota_rx 4096)
else()
  set(_fota_rx 65536)
endif()
set(_fota_defines "")
if(_fota_rx STREQUAL "4096")
  set(_fota_rx_feature "")
elseif(_fota_rx STREQUAL "16384")
  set(_fota_rx_feature "rx-16k")
  list(APPEND _fota_defines FOTA_RX_16K)
elseif(_fota_rx STREQUAL "65536")
  set(_fota_rx_feature "rx-64k")
  list(APPEND _fota_defines FOTA_RX_64K)
else()
  message(FATAL_ERROR "fota: FOTA_RX_BUF must be 4096, 16384 or 65536, not '${_fota_rx}'")
endif()
if(_fota_features MATCHES "(^|,)tls-4k-records(,|$)")
  list(APPEND _fota_defines FOTA_TLS_4K_RECORDS)
endif()

# Target features: a build for this host may use what its CPU has.
set(_fota_target_features "${FOTA_TARGET_FEATURES}")
if(_fota_target_features STREQUAL "auto")
  set(_fota_target_features "")
  if(NOT FOTA_RUST_TARGET AND CMAKE_HOST_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$"
     AND EXISTS "/proc/cpuinfo")
    file(STRINGS "/proc/cpuinfo" _fota_cpu_flags REGEX "^flags" LIMIT_COUNT 1)
    if(_fota_cpu_flags MATCHES " aes( |$)" AND _fota_cpu_flags MATCHES " pclmulqdq( |$)")
      set(_fota_target_features "+aes,+pclmulqdq")
    endif()
  endif()
elseif(_fota_target_features STREQUAL "none")
  set(_fota_target_features "")
endif()
if(_fota_target_features)
  set(_fota_rustflags_args --config "build.rustflags=['-Ctarget-feature=${_fota_target_features}']")
else()
  set(_fota_rustflags_args "")
endif()

if(_fota_features STREQUAL "none")
  set(_fota_feature_args --no-default-features)
  set(_fota_all_features "${_fota_rx_feature}")
elseif(_fota_features)
  set(_fota_feature_args --no-default-features)
  set(_fota_all_features "${_fota_features}")
  if(_fota_rx_feature)
    string(APPEND _fota_all_features ",${_fota_rx_feature}")
  endif()
else()
  set(_fota_feature_args "")  # the crate's default features
  set(_fota_all_features "${_fota_rx_feature}")
endif()
if(_fota_all_features)
  list(APPEND _fota_feature_args --features "${_fota_all_features}")
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
     CONTENT "target=${FOTA_RUST_TARGET}\nprofile=${_fota_profile}\nfeatures=${_fota_features}\nrx=${_fota_rx}\ntarget-features=${_fota_target_features}\nflags=${FOTA_CARGO_FLAGS}\n")

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

add_custom_command(
  OUTPUT "${FOTA_LIBRARY}"
  COMMAND "${FOTA_CARGO}" ${_fota_rustflags_args} rustc
          --manifest-path "${FOTA_SOURCE_DIR}/Cargo.toml"
          --target-dir "${FOTA_CARGO_TARGET_DIR}"
          --profile "${_fota_profile}" --lib --crate-type staticlib
          ${_fota_target_args} ${_fota_feature_args} ${FOTA_CARGO_FLAGS}
  # Cargo leaves the archive alone when it finds nothing to rebuild (e.g. only
  # Cargo.lock was touched); touch it so the build tool sees it up to date.
  COMMAND "${CMAKE_COMMAND}" -E touch_nocreate "${FOTA_LIBRARY}"
  DEPENDS ${_fota_depends} "${_fota_config_stamp}"
  WORKING_DIRECTORY "${FOTA_SOURCE_DIR}"
  COMMENT "cargo: building ${_fota_archive_name} (target: ${_fota_target_desc}; profile: ${_fota_profile}; features: ${_fota_features_desc}; FOTA_RX_BUF ${_fota_rx}; target features: ${_fota_target_features})"
  USES_TERMINAL
  VERBATIM)
add_custom_target(fota_cargo DEPENDS "${FOTA_LIBRARY}")

add_library(fota STATIC IMPORTED GLOBAL)
set_target_properties(fota PROPERTIES
  IMPORTED_LOCATION "${FOTA_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${FOTA_SOURCE_DIR}/include"
  INTERFACE_COMPILE_DEFINITIONS "${_fota_defines}")
add_dependencies(fota fota_cargo)
add_library(fota::fota ALIAS fota)

# Native libraries the archive needs. `cargo rustc --release --crate-type
# staticlib -- --print native-static-libs` prints an empty list for this
# #![no_std] crate, on the host and on thumbv7em-none-eabihf alike: the only
# undefined symbols are memcpy/memset/memcmp/bcmp-style helpers, which libc
# (host) or the archive's own compiler_builtins (Cortex-M) provide. Nothing to
# add on either side; a C program linking fota::fota already links libc.
set(FOTA_NATIVE_LIBS "")
if(NOT CMAKE_CROSSCOMPILING AND FOTA_NATIVE_LIBS)
  set_property(TARGET fota APPEND PROPERTY INTERFACE_LINK_LIBRARIES ${FOTA_NATIVE_LIBS})
endif()

unset(_fota_profile)
unset(_fota_target_features)
unset(_fota_cpu_flags)
unset(_fota_rustflags_args)
unset(_fota_profile_dir)
unset(_fota_rx)
unset(_fota_rx_feature)
unset(_fota_defines)
unset(_fota_all_features)
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
