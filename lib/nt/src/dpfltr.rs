//! Debug print filtering (`dpfilter.h`): the component ids `DbgPrintEx`
//! takes, their names (the kernel's `Kd_<name>_Mask` variables and the
//! values of `Control\Session Manager\Debug Print Filter`), the levels, and
//! the rule that decides whether a message goes out.

/// `DPFLTR_ERROR_LEVEL`.
pub const DPFLTR_ERROR_LEVEL: u32 = 0;
/// `DPFLTR_WARNING_LEVEL`.
pub const DPFLTR_WARNING_LEVEL: u32 = 1;
/// `DPFLTR_TRACE_LEVEL`.
pub const DPFLTR_TRACE_LEVEL: u32 = 2;
/// `DPFLTR_INFO_LEVEL`.
pub const DPFLTR_INFO_LEVEL: u32 = 3;
/// `DPFLTR_MASK`: a level with this bit is a mask, not a bit number.
pub const DPFLTR_MASK: u32 = 0x8000_0000;

/// `DPFLTR_SYSTEM_ID`.
pub const DPFLTR_SYSTEM_ID: u32 = 0;
/// `DPFLTR_IHVDRIVER_ID`.
pub const DPFLTR_IHVDRIVER_ID: u32 = 77;
/// `DPFLTR_DEFAULT_ID`: the component of `DbgPrint` and `KdPrint`.
pub const DPFLTR_DEFAULT_ID: u32 = 101;
/// `DPFLTR_ENDOFTABLE_ID`: the number of components.
pub const DPFLTR_ENDOFTABLE_ID: u32 = 146;

/// The component names, indexed by `DPFLTR_<name>_ID`.
pub const COMPONENT_NAMES: [&str; DPFLTR_ENDOFTABLE_ID as usize] = [
    "SYSTEM",
    "SMSS",
    "SETUP",
    "NTFS",
    "FSTUB",
    "CRASHDUMP",
    "CDAUDIO",
    "CDROM",
    "CLASSPNP",
    "DISK",
    "REDBOOK",
    "STORPROP",
    "SCSIPORT",
    "SCSIMINIPORT",
    "CONFIG",
    "I8042PRT",
    "SERMOUSE",
    "LSERMOUS",
    "KBDHID",
    "MOUHID",
    "KBDCLASS",
    "MOUCLASS",
    "TWOTRACK",
    "WMILIB",
    "ACPI",
    "AMLI",
    "HALIA64",
    "VIDEO",
    "SVCHOST",
    "VIDEOPRT",
    "TCPIP",
    "DMSYNTH",
    "NTOSPNP",
    "FASTFAT",
    "SAMSS",
    "PNPMGR",
    "NETAPI",
    "SCSERVER",
    "SCCLIENT",
    "SERIAL",
    "SERENUM",
    "UHCD",
    "RPCPROXY",
    "AUTOCHK",
    "DCOMSS",
    "UNIMODEM",
    "SIS",
    "FLTMGR",
    "WMICORE",
    "BURNENG",
    "IMAPI",
    "SXS",
    "FUSION",
    "IDLETASK",
    "SOFTPCI",
    "TAPE",
    "MCHGR",
    "IDEP",
    "PCIIDE",
    "FLOPPY",
    "FDC",
    "TERMSRV",
    "W32TIME",
    "PREFETCHER",
    "RSFILTER",
    "FCPORT",
    "PCI",
    "DMIO",
    "DMCONFIG",
    "DMADMIN",
    "WSOCKTRANSPORT",
    "VSS",
    "PNPMEM",
    "PROCESSOR",
    "DMSERVER",
    "SR",
    "INFINIBAND",
    "IHVDRIVER",
    "IHVVIDEO",
    "IHVAUDIO",
    "IHVNETWORK",
    "IHVSTREAMING",
    "IHVBUS",
    "HPS",
    "RTLTHREADPOOL",
    "LDR",
    "TCPIP6",
    "ISAPNP",
    "SHPC",
    "STORPORT",
    "STORMINIPORT",
    "PRINTSPOOLER",
    "VSSDYNDISK",
    "VERIFIER",
    "VDS",
    "VDSBAS",
    "VDSDYN",
    "VDSDYNDR",
    "VDSLDR",
    "VDSUTIL",
    "DFRGIFC",
    "DEFAULT",
    "MM",
    "DFSC",
    "WOW64",
    "ALPC",
    "WDI",
    "PERFLIB",
    "KTM",
    "IOSTRESS",
    "HEAP",
    "WHEA",
    "USERGDI",
    "MMCSS",
    "TPM",
    "THREADORDER",
    "ENVIRON",
    "EMS",
    "WDT",
    "FVEVOL",
    "NDIS",
    "NVCTRACE",
    "LUAFV",
    "APPCOMPAT",
    "USBSTOR",
    "SBP2PORT",
    "COVERAGE",
    "CACHEMGR",
    "MOUNTMGR",
    "CFR",
    "TXF",
    "KSECDD",
    "FLTREGRESS",
    "MPIO",
    "MSDSM",
    "UDFS",
    "PSHED",
    "STORVSP",
    "LSASS",
    "SSPICLI",
    "CNG",
    "EXFAT",
    "FILETRACE",
    "XSAVE",
    "SE",
    "DRIVEEXTENDER",
];

/// The id of the component `name` (case-insensitive, as the registry's
/// value names are).
pub fn component_id(name: &str) -> Option<u32> {
    COMPONENT_NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .map(|i| i as u32)
}

/// The filter rule ("Reading and Filtering Debugging Messages"): a `level`
/// of 0..=31 stands for the bit `1 << level`, a larger one is a mask
/// itself; the message goes out when that mask meets the component's mask
/// or the `WIN2000` mask (`Kd_WIN2000_Mask`, by default the error level).
pub fn enabled(level: u32, component_mask: u32, win2000_mask: u32) -> bool {
    let mask = if level < 32 { 1u32 << level } else { level };
    mask & (component_mask | win2000_mask) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        assert_eq!(component_id("DEFAULT"), Some(DPFLTR_DEFAULT_ID));
        assert_eq!(component_id("ihvdriver"), Some(DPFLTR_IHVDRIVER_ID));
        assert_eq!(component_id("SYSTEM"), Some(0));
        assert_eq!(component_id("NTFS"), Some(3));
        assert_eq!(component_id("PCI"), Some(66));
        assert_eq!(component_id("MOUNTMGR"), Some(128));
        assert_eq!(component_id("DRIVEEXTENDER"), Some(145));
        assert_eq!(component_id("NOSUCH"), None);
    }

    #[test]
    fn filter_rule() {
        // Level 0..31 is a bit number: ERROR (0) passes with the default
        // WIN2000 mask of 1, INFO (3) only with the component's bit 3.
        assert!(enabled(DPFLTR_ERROR_LEVEL, 0, 1));
        assert!(!enabled(DPFLTR_INFO_LEVEL, 0, 1));
        assert!(enabled(DPFLTR_INFO_LEVEL, 0x8, 1));
        assert!(!enabled(DPFLTR_TRACE_LEVEL, 0x8, 1));
        // Above 31 the level is a mask.
        assert!(enabled(0x30, 0x10, 0));
        assert!(!enabled(0x40, 0x30, 0));
        assert!(enabled(31, 0x8000_0000, 0));
        assert!(enabled(DPFLTR_MASK | 4, 4, 0));
    }
}
