"""The ARM machine's physical address map: QEMU ``virt``'s, so guests and
device trees written for it fit.

=====================  ============  ===============================
what                   address       size
=====================  ============  ===============================
GIC distributor        0x08000000    64 KiB (GICv3), 4 KiB (GICv2)
GICv2 CPU interface    0x08010000    8 KiB
GICv3 redistributors   0x080A0000    128 KiB per vCPU
PL011 UART             0x09000000    4 KiB, SPI 1 (interrupt id 33)
RAM                    0x40000000    vm.ram_size
AArch64 entry          RAM + 0x80000 (Linux's arm64 image offset)
=====================  ============  ===============================
"""

from __future__ import annotations

from typing import Final

GIC_DISTRIBUTOR: Final = 0x08000000
GIC_CPU_INTERFACE: Final = 0x08010000
GIC_REDISTRIBUTORS: Final = 0x080A0000
GIC_REDISTRIBUTOR_SIZE: Final = 0x20000
UART_ADDRESS: Final = 0x09000000
UART_SPI: Final = 33
RAM_BASE: Final = 0x40000000
AARCH64_IMAGE_OFFSET: Final = 0x80000
#: below RAM: the frames above and room for more devices
DEVICE_REGION: Final = (0x08000000, RAM_BASE)
