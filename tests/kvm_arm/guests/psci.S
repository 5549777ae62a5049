/* psci.S: PSCI SYSTEM_OFF at once. */
        .include "common.inc"
        .globl  _start
_start:
        psci_off
        b       .
        .ltorg
