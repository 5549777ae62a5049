/*
 * cpuid.S - CPUID as the guest sees it, at CPL RING.
 *
 * Loop: read a dword leaf from the query port 0xE0; 0xFFFFFFFF ends the
 * loop.  Otherwise read a dword sub-leaf from 0xE0, execute cpuid with
 * EAX = leaf, ECX = sub-leaf (EBX and EDX preset to 0xDEADBEEF, so a
 * register cpuid left alone shows), and write EAX, EBX, ECX, EDX as dwords
 * to the report port 0xE4.  Ends with hlt (RING 3: #GP -> hlt at CPL0).
 */
        .text
        .globl  _start
        .set    QUERY,  0xE0
        .set    REPORT, 0xE4

_start:
        ENTER_RING body
body:
        in      $QUERY, %eax
        cmp     $0xFFFFFFFF, %eax
        je      done
        mov     %eax, %esi
        in      $QUERY, %eax
        mov     %eax, %ecx
        mov     %esi, %eax
        mov     $0xDEADBEEF, %ebx
        mov     $0xDEADBEEF, %edx
        cpuid
        out     %eax, $REPORT
        mov     %ebx, %eax
        out     %eax, $REPORT
        mov     %ecx, %eax
        out     %eax, $REPORT
        mov     %edx, %eax
        out     %eax, $REPORT
        jmp     body
done:
        hlt

        RING0_RETURN
