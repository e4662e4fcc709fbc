#!/bin/sh
# Runs a C-simulation testbench inside its folder (it reads tb_data/ from there) and, when a signal
# kills it, says so in one line on stderr rather than leaving only make's "Error 139".
# Usage: sh run_tb.sh HLS_DIR PROGRAM. Exits with the testbench's status (128 + signal on a crash).
cd "$1" || exit 2
"$2"
rc=$?
if [ "$rc" -gt 128 ]; then
    sig=$((rc - 128))
    case $sig in
        4) what="illegal instruction" ;;
        6) what="aborted" ;;
        7) what="bus error" ;;
        8) what="floating-point exception" ;;
        9) what="killed" ;;
        11) what="segmentation fault" ;;
        *) what="SIG$(kill -l "$sig" 2>/dev/null)" ;;
    esac
    echo "csim crashed: signal $sig ($what) in $2; rebuild with SANITIZE=1 to see where" >&2
fi
exit "$rc"
