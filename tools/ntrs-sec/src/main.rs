//! `ntrs-sec`: runs `SeAccessCheck` and the SDDL parser from the host.

use clap::{Parser, Subcommand, ValueEnum};
use security::access::GenericMapping;
use security::check::{access_check, CheckFlags};
use security::sid::Sid;
use security::token::Token;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ntrs-sec", about = "ntrs security reference monitor tool")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum TokenKind {
    System,
    Admin,
    User,
}

#[derive(Subcommand)]
enum Cmd {
    /// Access-check a token against an SDDL security descriptor (file generic mapping).
    Check {
        /// Security descriptor in SDDL.
        #[arg(long)]
        sd: String,
        /// Which built-in token to use.
        #[arg(long, value_enum)]
        token: TokenKind,
        /// Desired access mask (hex 0x... or decimal).
        #[arg(long)]
        access: String,
        /// Open with backup intent (SeBackup/SeRestore apply if enabled).
        #[arg(long)]
        backup: bool,
    },
    /// Parse an SDDL string and print the descriptor.
    Sddl {
        /// Security descriptor in SDDL.
        sddl: String,
    },
}

fn parse_mask(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check {
            sd,
            token,
            access,
            backup,
        } => {
            let sd = match security::sddl::parse(&sd) {
                Ok(sd) => sd,
                Err(e) => {
                    eprintln!("ntrs-sec: bad SDDL: {e}");
                    return ExitCode::from(2);
                }
            };
            let Some(mask) = parse_mask(&access) else {
                eprintln!("ntrs-sec: bad access mask {access:?}");
                return ExitCode::from(2);
            };
            let user = Sid::parse_str("S-1-5-21-1000-1000-1000-1001").unwrap();
            let token = match token {
                TokenKind::System => Token::system(),
                TokenKind::Admin => Token::administrator(user),
                TokenKind::User => Token::standard_user(user),
            };
            let flags = CheckFlags {
                backup_intent: backup,
            };
            match access_check(&sd, &token, mask, &GenericMapping::FILE, flags) {
                Ok(g) => {
                    println!("granted {g:#010x} STATUS_SUCCESS");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("granted 0x00000000 {}", e.name().unwrap_or("?"));
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Sddl { sddl } => match security::sddl::parse(&sddl) {
            Ok(sd) => {
                let opt = |s: &Option<Sid>| s.as_ref().map_or("(none)".into(), |s| s.to_string());
                println!("control: {:#06x}", sd.control);
                println!("owner:   {}", opt(&sd.owner));
                println!("group:   {}", opt(&sd.group));
                for (name, present, acl) in [
                    ("dacl", sd.dacl_present(), &sd.dacl),
                    (
                        "sacl",
                        sd.control & security::sd::SE_SACL_PRESENT != 0,
                        &sd.sacl,
                    ),
                ] {
                    match (present, acl) {
                        (false, _) => println!("{name}:    (not present)"),
                        (true, None) => println!("{name}:    NULL"),
                        (true, Some(a)) => {
                            println!("{name}:    revision {} {} ACE(s)", a.revision, a.aces.len());
                            for ace in &a.aces {
                                println!(
                                    "  type {:#04x} flags {:#04x} mask {:#010x} {}",
                                    ace.ace_type, ace.flags, ace.mask, ace.sid
                                );
                            }
                        }
                    }
                }
                println!(
                    "sddl:    {}",
                    security::sddl::format(&sd).unwrap_or_default()
                );
                println!("bytes:   {}", sd.to_bytes().len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ntrs-sec: bad SDDL: {e}");
                ExitCode::from(2)
            }
        },
    }
}
