//! `/usr/lib/minivm/reseed`, the guest's one compiled helper: a static
//! x86-64 ELF executable of 49 bytes of code that reseeds the kernel's random
//! generator (ioctl `RNDRESEEDCRNG` on /dev/urandom) from its input pool. A
//! warm clone writes the host's random bytes into the pool and then runs it,
//! so that clones restored from one saved memory image stop sharing their
//! generator's state at once. Busybox has no such ioctl; a shell cannot make
//! one. Written here as bytes (no cross toolchain at image build time), its
//! assembly beside each instruction; exit status 0, or the errno.

/// The code, loaded at [`LOAD_ADDR`] + [`CODE_OFFSET`], position-independent.
const CODE: &[u8] = &[
    0xb8, 0x02, 0x00, 0x00, 0x00, //             mov  eax, 2            ; open
    0x48, 0x8d, 0x3d, 0x25, 0x00, 0x00, 0x00, // lea  rdi, [rip+0x25]   ; path
    0x31, 0xf6, //                               xor  esi, esi          ; O_RDONLY
    0x31, 0xd2, //                               xor  edx, edx
    0x0f, 0x05, //                               syscall
    0x85, 0xc0, //                               test eax, eax
    0x78, 0x10, //                               js   fail
    0x89, 0xc7, //                               mov  edi, eax          ; fd
    0xb8, 0x10, 0x00, 0x00, 0x00, //             mov  eax, 16           ; ioctl
    0xbe, 0x07, 0x52, 0x00, 0x00, //             mov  esi, 0x5207       ; RNDRESEEDCRNG
    0x31, 0xd2, //                               xor  edx, edx
    0x0f, 0x05, //                               syscall
    0x89, 0xc7, //                         fail: mov  edi, eax
    0xf7, 0xdf, //                               neg  edi               ; -result
    0xb8, 0x3c, 0x00, 0x00, 0x00, //             mov  eax, 60           ; exit
    0x0f, 0x05, //                               syscall
];
const PATH: &[u8] = b"/dev/urandom\0";

const LOAD_ADDR: u64 = 0x40_0000;
const EHDR_SIZE: u16 = 64;
const PHDR_SIZE: u16 = 56;
const CODE_OFFSET: u64 = (EHDR_SIZE + PHDR_SIZE) as u64;

/// The whole executable: ELF header, one read+execute `PT_LOAD` segment
/// that maps the file, the code and the path.
pub fn executable() -> Vec<u8> {
    let size = CODE_OFFSET + (CODE.len() + PATH.len()) as u64;
    let mut f = Vec::with_capacity(size as usize);
    // ELF header.
    f.extend_from_slice(b"\x7fELF");
    f.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, System V
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    f.extend_from_slice(&(LOAD_ADDR + CODE_OFFSET).to_le_bytes()); // entry
    f.extend_from_slice(&u64::from(EHDR_SIZE).to_le_bytes()); // program headers
    f.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    f.extend_from_slice(&EHDR_SIZE.to_le_bytes());
    f.extend_from_slice(&PHDR_SIZE.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes()); // one program header
    f.extend_from_slice(&64u16.to_le_bytes()); // section header size
    f.extend_from_slice(&0u16.to_le_bytes()); // no sections
    f.extend_from_slice(&0u16.to_le_bytes()); // no section names
                                              // Program header: PT_LOAD, R+X, the whole file at LOAD_ADDR.
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&5u32.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes()); // offset
    f.extend_from_slice(&LOAD_ADDR.to_le_bytes()); // vaddr
    f.extend_from_slice(&LOAD_ADDR.to_le_bytes()); // paddr
    f.extend_from_slice(&size.to_le_bytes()); // file size
    f.extend_from_slice(&size.to_le_bytes()); // memory size
    f.extend_from_slice(&0x1000u64.to_le_bytes()); // alignment
    f.extend_from_slice(CODE);
    f.extend_from_slice(PATH);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_where_the_lea_points() {
        // lea's displacement counts from the end of the lea (offset 12).
        let disp = i32::from_le_bytes(CODE[8..12].try_into().unwrap()) as usize;
        assert_eq!(12 + disp, CODE.len());
        assert_eq!(&executable()[CODE_OFFSET as usize + CODE.len()..], PATH);
    }

    #[test]
    fn headers_describe_the_file() {
        let f = executable();
        assert_eq!(f.len() as u64, CODE_OFFSET + 49 + 13);
        assert_eq!(&f[..4], b"\x7fELF");
        let entry = u64::from_le_bytes(f[24..32].try_into().unwrap());
        assert_eq!(entry, LOAD_ADDR + CODE_OFFSET);
        let filesz = u64::from_le_bytes(f[64 + 32..64 + 40].try_into().unwrap());
        assert_eq!(filesz, f.len() as u64);
    }

    /// The host runs the same code: as root it reseeds the host's own
    /// generator (harmless: a reseed only adds), as anyone else the kernel
    /// refuses it with EPERM. Either way the program runs and exits cleanly.
    #[test]
    fn runs_on_this_host_and_exits_with_0_or_eperm() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("reseed");
        std::fs::write(&p, executable()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let code = std::process::Command::new(&p).status().unwrap().code();
        assert!(matches!(code, Some(0) | Some(1)), "{code:?}");
    }
}
