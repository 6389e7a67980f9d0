#!/bin/sh
# Rebuilds seh.dll from seh.s with MinGW-w64's binutils (Debian
# binutils-mingw-w64-x86-64). The DLL is checked in so the tests need no
# cross tools.
set -e
cd "$(dirname "$0")"
x86_64-w64-mingw32-as -o seh.o seh.s
x86_64-w64-mingw32-ld -shared --image-base=0x180000000 -e f_push --no-insert-timestamp -o seh.dll seh.o
rm seh.o
