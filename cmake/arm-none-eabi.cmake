# Toolchain file for Cortex-M4F firmware (arm-none-eabi-gcc, newlib-nano).
#
#   cmake -S <project> -B build -DCMAKE_TOOLCHAIN_FILE=<fota>/cmake/arm-none-eabi.cmake
#
# Builds C for -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 and
# makes fota.cmake build libfota.a for the matching Rust target,
# thumbv7em-none-eabihf (override with -DFOTA_RUST_TARGET=...; install it with
# `rustup target add thumbv7em-none-eabihf`).
#
# Set ARM_NONE_EABI_TOOLCHAIN_PATH (cache or environment) to the toolchain's
# root when arm-none-eabi-gcc is not on PATH.

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

if(NOT ARM_NONE_EABI_TOOLCHAIN_PATH AND DEFINED ENV{ARM_NONE_EABI_TOOLCHAIN_PATH})
  set(ARM_NONE_EABI_TOOLCHAIN_PATH "$ENV{ARM_NONE_EABI_TOOLCHAIN_PATH}")
endif()
if(ARM_NONE_EABI_TOOLCHAIN_PATH)
  set(_arm_prefix "${ARM_NONE_EABI_TOOLCHAIN_PATH}/bin/arm-none-eabi-")
else()
  set(_arm_prefix "arm-none-eabi-")
endif()

set(CMAKE_C_COMPILER   "${_arm_prefix}gcc")
set(CMAKE_CXX_COMPILER "${_arm_prefix}g++")
set(CMAKE_ASM_COMPILER "${_arm_prefix}gcc")
set(CMAKE_AR           "${_arm_prefix}ar" CACHE FILEPATH "")
set(CMAKE_RANLIB       "${_arm_prefix}ranlib" CACHE FILEPATH "")
set(CMAKE_OBJCOPY      "${_arm_prefix}objcopy" CACHE FILEPATH "")
set(CMAKE_OBJDUMP      "${_arm_prefix}objdump" CACHE FILEPATH "")
set(CMAKE_SIZE         "${_arm_prefix}size" CACHE FILEPATH "")

# No OS to link a test program against: check the compilers by building a
# static library instead of an executable.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(_arm_cpu_flags "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
# newlib-nano: nano.specs also selects newlib-nano's headers, so it goes on
# the compile lines as well as the link line.
set(CMAKE_C_FLAGS_INIT   "${_arm_cpu_flags} --specs=nano.specs -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "${_arm_cpu_flags} --specs=nano.specs -ffunction-sections -fdata-sections -fno-exceptions -fno-rtti")
set(CMAKE_ASM_FLAGS_INIT "${_arm_cpu_flags}")
# CMake links with the compiler and passes CMAKE_C_FLAGS on the link line,
# so nano.specs and the CPU flags are there already (a second --specs=nano.specs
# is a gcc error). The firmware adds its own linker script and startup code.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,--gc-sections")

# The Rust side of the same ABI (hard-float, Thumb-2 with DSP, Cortex-M4F).
set(FOTA_RUST_TARGET "thumbv7em-none-eabihf" CACHE STRING
    "Rust target triple for libfota.a (empty: the host)")

# Look for libraries and headers in the target environment only, programs on the host.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

unset(_arm_prefix)
unset(_arm_cpu_flags)
