//! A job's working directory as it travels: a small tar archive (POSIX ustar) of regular files
//! and folders, written by the CLI (`grappe job submit --workdir DIR`) or the web form (a script
//! file), checked whole when it arrives, and unpacked into the job's working directory before its
//! first run. Only what a working directory needs is read: no links, devices, extended headers or
//! absolute or `..` paths, and bounds on the entries and the bytes, so that an archive can neither
//! write outside the directory nor fill the disk.

/// The most bytes of file content an archive may hold.
pub const MAX_BYTES: u64 = 16 << 20;
/// The most entries (files and folders) an archive may hold.
pub const MAX_ENTRIES: usize = 10_000;

const BLOCK: usize = 512;

/// One entry: a folder, or a file with its bytes and whether it is executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { path: String },
    File { path: String, bytes: Vec<u8>, executable: bool },
}

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path } | Entry::File { path, .. } => path,
        }
    }
}

/// Why an archive was refused; the message names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadArchive(pub String);

/// A path inside the working directory: relative, `/`-separated, without `.`, `..` or empty
/// parts (a leading `./` is dropped), at most 255 bytes; the normalised path.
pub fn check_path(raw: &str) -> Result<String, BadArchive> {
    let bad = |why: &str| Err(BadArchive(format!("`{raw}`: {why}")));
    if raw.starts_with('/') {
        return bad("an absolute path");
    }
    if raw.contains('\0') || raw.chars().any(char::is_control) {
        return bad("a control character in the path");
    }
    let parts: Vec<&str> = raw.split('/').filter(|part| !part.is_empty() && *part != ".").collect();
    if parts.contains(&"..") {
        return bad("`..` leaves the working directory");
    }
    let path = parts.join("/");
    if path.is_empty() {
        return bad("an empty path");
    }
    if path.len() > 255 {
        return bad("longer than 255 bytes");
    }
    Ok(path)
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(text.as_bytes());
    field[width] = 0;
}

/// A ustar header: the name split into prefix and name where it is longer than 100 bytes.
fn header(path: &str, size: u64, mode: u64, kind: u8) -> Result<[u8; BLOCK], BadArchive> {
    let mut block = [0u8; BLOCK];
    let (prefix, name) = if path.len() <= 100 {
        ("", path)
    } else {
        // The prefix ends at a `/` with at most 155 bytes before it and 100 after.
        let cut = path
            .char_indices()
            .filter(|(i, c)| *c == '/' && *i <= 155 && path.len() - i - 1 <= 100)
            .map(|(i, _)| i)
            .next_back()
            .ok_or_else(|| BadArchive(format!("`{path}`: a name part too long for a ustar archive")))?;
        (&path[..cut], &path[cut + 1..])
    };
    block[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut block[100..108], mode);
    octal(&mut block[108..116], 0);
    octal(&mut block[116..124], 0);
    octal(&mut block[124..136], size);
    octal(&mut block[136..148], 0);
    block[156] = kind;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    block[148..156].copy_from_slice(b"        ");
    let sum: u64 = block.iter().map(|b| u64::from(*b)).sum();
    octal(&mut block[148..155], sum);
    block[155] = b' ';
    Ok(block)
}

/// Entries as a ustar archive, checked as [`unpack`] would check them.
pub fn pack(entries: &[Entry]) -> Result<Vec<u8>, BadArchive> {
    check_bounds(entries)?;
    let mut out = Vec::new();
    for entry in entries {
        let path = check_path(entry.path())?;
        match entry {
            Entry::Dir { .. } => out.extend_from_slice(&header(&format!("{path}/"), 0, 0o755, b'5')?),
            Entry::File { bytes, executable, .. } => {
                let mode = if *executable { 0o755 } else { 0o644 };
                out.extend_from_slice(&header(&path, bytes.len() as u64, mode, b'0')?);
                out.extend_from_slice(bytes);
                out.resize(out.len().next_multiple_of(BLOCK), 0);
            }
        }
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

fn check_bounds(entries: &[Entry]) -> Result<(), BadArchive> {
    if entries.len() > MAX_ENTRIES {
        return Err(BadArchive(format!("more than {MAX_ENTRIES} files and folders")));
    }
    let bytes: u64 = entries
        .iter()
        .map(|entry| match entry {
            Entry::File { bytes, .. } => bytes.len() as u64,
            Entry::Dir { .. } => 0,
        })
        .sum();
    if bytes > MAX_BYTES {
        return Err(BadArchive(format!("more than {} MiB of files", MAX_BYTES >> 20)));
    }
    Ok(())
}

fn field_text(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

fn read_octal(field: &[u8], what: &str, at: usize) -> Result<u64, BadArchive> {
    let text = std::str::from_utf8(field_text(field)).unwrap_or("?").trim_matches(|c| c == ' ' || c == '\0');
    u64::from_str_radix(if text.is_empty() { "0" } else { text }, 8)
        .map_err(|_| BadArchive(format!("entry {at}: its {what} is not an octal number (use a ustar archive)")))
}

/// The entries of a ustar archive (as `tar --format=ustar` writes them), checked: checksums,
/// kinds (files and folders only), paths ([`check_path`], each once), bounds.
pub fn unpack(archive: &[u8]) -> Result<Vec<Entry>, BadArchive> {
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut files = std::collections::HashSet::new();
    let mut folders = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut offset = 0;
    while offset + BLOCK <= archive.len() {
        let block = &archive[offset..offset + BLOCK];
        if block.iter().all(|b| *b == 0) {
            break;
        }
        let at = entries.len() + 1;
        if &block[257..262] != b"ustar" {
            return Err(BadArchive(format!("entry {at}: not a ustar header")));
        }
        let stored = read_octal(&block[148..156], "checksum", at)?;
        let sum: u64 =
            block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u64::from(*b) }).sum();
        if stored != sum {
            return Err(BadArchive(format!("entry {at}: its checksum is wrong (a damaged archive)")));
        }
        let name = String::from_utf8(field_text(&block[..100]).to_vec());
        let prefix = String::from_utf8(field_text(&block[345..500]).to_vec());
        let (Ok(name), Ok(prefix)) = (name, prefix) else {
            return Err(BadArchive(format!("entry {at}: its path is not UTF-8")));
        };
        let raw = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let size = read_octal(&block[124..136], "size", at)?;
        let mode = read_octal(&block[100..108], "mode", at)?;
        offset += BLOCK;
        let entry = match block[156] {
            b'0' | 0 => {
                let path = check_path(&raw)?;
                total = total.saturating_add(size);
                if total > MAX_BYTES {
                    return Err(BadArchive(format!("more than {} MiB of files", MAX_BYTES >> 20)));
                }
                let end = offset.checked_add(size as usize).filter(|end| *end <= archive.len());
                let end = end.ok_or_else(|| BadArchive(format!("`{path}`: the archive ends inside it")))?;
                let bytes = archive[offset..end].to_vec();
                offset = end.next_multiple_of(BLOCK);
                Entry::File { path, bytes, executable: mode & 0o111 != 0 }
            }
            // `tar -C DIR -cf - .` starts with the folder itself, `./`: nothing to make.
            b'5' if raw.split('/').all(|part| part.is_empty() || part == ".") => continue,
            b'5' => Entry::Dir { path: check_path(&raw)? },
            b'1' | b'2' => return Err(BadArchive(format!("`{raw}`: a link (only files and folders are taken)"))),
            b'x' | b'g' | b'L' | b'K' => {
                return Err(BadArchive(format!(
                    "entry {at}: an extended header (make the archive with --format=ustar)"
                )));
            }
            other => {
                return Err(BadArchive(format!(
                    "`{raw}`: an entry of kind `{}` (only files and folders)",
                    other as char
                )));
            }
        };
        if !seen.insert(entry.path().to_owned()) {
            return Err(BadArchive(format!("`{}`: twice in the archive", entry.path())));
        }
        // A path is a file or a folder, never both: no entry under a file, no file where an
        // earlier entry needs a folder.
        let path = entry.path();
        let mut ancestors = path.match_indices('/').map(|(i, _)| &path[..i]);
        if let Some(file) = ancestors.find(|ancestor| files.contains(*ancestor)) {
            return Err(BadArchive(format!("`{path}`: under `{file}`, which is a file")));
        }
        if matches!(entry, Entry::File { .. }) {
            if folders.contains(path) {
                return Err(BadArchive(format!("`{path}`: a file where the archive has a folder")));
            }
            files.insert(path.to_owned());
        }
        folders.extend(path.match_indices('/').map(|(i, _)| path[..i].to_owned()));
        if matches!(entry, Entry::Dir { .. }) {
            folders.insert(path.to_owned());
        }
        entries.push(entry);
        if entries.len() > MAX_ENTRIES {
            return Err(BadArchive(format!("more than {MAX_ENTRIES} files and folders")));
        }
    }
    if entries.is_empty() {
        return Err(BadArchive("an empty archive".to_owned()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> Entry {
        Entry::File { path: path.to_owned(), bytes: text.as_bytes().to_vec(), executable: false }
    }

    #[test]
    fn what_is_packed_unpacks_the_same() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let entries = vec![
            Entry::Dir { path: "src".into() },
            file("src/train.py", "print('bonjour')\n"),
            Entry::File { path: "run.sh".into(), bytes: b"#!/bin/sh\necho hi\n".to_vec(), executable: true },
            file(&long, ""),
            file("données/é.txt", "é"),
        ];
        let archive = pack(&entries).unwrap();
        assert_eq!(archive.len() % BLOCK, 0);
        assert_eq!(unpack(&archive).unwrap(), entries);
    }

    #[test]
    fn paths_stay_inside_the_working_directory() {
        assert_eq!(check_path("./a//b/./c").unwrap(), "a/b/c");
        for bad in ["/etc/passwd", "../x", "a/../../x", "", ".", "a\nb", &"x".repeat(256)] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    /// An archive with one header whose fields are set by hand (a tool other than ours).
    fn forged(name: &str, kind: u8, size: u64, body: &[u8]) -> Vec<u8> {
        let mut block = header("placeholder", size, 0o644, kind).unwrap();
        block[..100].fill(0);
        block[..name.len()].copy_from_slice(name.as_bytes());
        block[148..156].copy_from_slice(b"        ");
        let sum: u64 = block.iter().map(|b| u64::from(*b)).sum();
        octal(&mut block[148..155], sum);
        let mut archive = block.to_vec();
        archive.extend_from_slice(body);
        archive.resize(archive.len().next_multiple_of(BLOCK) + 2 * BLOCK, 0);
        archive
    }

    #[test]
    fn hostile_archives_are_refused_with_the_entry_named() {
        let refused = |archive: &[u8]| unpack(archive).unwrap_err().0;
        assert!(refused(&forged("../../etc/cron.d/x", b'0', 1, b"x")).contains("`..` leaves"));
        assert!(refused(&forged("/root/.ssh/authorized_keys", b'0', 1, b"x")).contains("an absolute path"));
        assert!(refused(&forged("link", b'2', 0, b"")).contains("a link"));
        assert!(refused(&forged("hard", b'1', 0, b"")).contains("a link"));
        assert!(refused(&forged("dev", b'3', 0, b"")).contains("kind `3`"));
        // The folder itself (`./`) is no entry; alone, the archive is empty.
        assert!(refused(&forged("./", b'5', 0, b"")).contains("empty"));
        assert!(refused(&forged("PaxHeader", b'x', 0, b"")).contains("--format=ustar"));
        // A size that runs past the end, and one past the bound.
        assert!(refused(&forged("big", b'0', 1 << 20, b"short")).contains("ends inside it"));
        assert!(refused(&forged("huge", b'0', MAX_BYTES + 1, b"")).contains("MiB of files"));
        let mut damaged = pack(&[file("a", "b")]).unwrap();
        damaged[0] = b'z';
        assert!(refused(&damaged).contains("checksum"));
        assert!(refused(&[0u8; 1024]).contains("empty"));
        assert!(refused(b"not a tar at all, just some bytes").contains("empty"));
        let twice = pack(&[file("a", "1")]).unwrap();
        let mut both = twice[..twice.len() - 2 * BLOCK].to_vec();
        both.extend_from_slice(&twice);
        assert!(refused(&both).contains("twice"));
        // A path as both a file and a folder, in either order.
        assert!(refused(&pack(&[file("a", "1"), file("a/b", "2")]).unwrap()).contains("under `a`, which is a file"));
        assert!(refused(&pack(&[file("a/b", "2"), file("a", "1")]).unwrap()).contains("a file where"));
        assert!(refused(&pack(&[Entry::Dir { path: "d".into() }, file("d", "1")]).unwrap()).contains("twice"));
        let many: Vec<Entry> = (0..=MAX_ENTRIES).map(|i| Entry::Dir { path: format!("d{i}") }).collect();
        assert!(pack(&many).unwrap_err().0.contains("more than"));
    }
}
