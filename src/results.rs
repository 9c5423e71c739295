//! The results file: JSON Lines, appended, fsynced before tasks leave Redis.
//!
//! [`ResultsFile::open`] repairs what a crash can leave: a last line without
//! its newline (a write cut short) is cut off, so the file only ever holds
//! whole lines. [`ResultsFile::append`] writes a group of lines and fsyncs; if
//! the write fails part-way, the file is truncated back to where it was.
//!
//! Beside the file, `<path>.checkpoint` holds the offset up to which every
//! line's task is known to be settled in Redis. A line after it may belong to
//! a task that a crash left in Redis, so at start [`ResultsFile::unsettled`]
//! reads the (id, url) of those lines, and they are recorded as published
//! before any task is taken: such a task then gets no second line. The
//! checkpoint is written after the fact and without fsync: when it is stale or
//! lost, more of the file is read, which is safe.
//!
//! Also beside the file, `<path>.id` names it for good (random, made once):
//! the write records in Redis ([`crate::queue`]) say which file is writing
//! an id's line, so that a daemon restarted with the same file knows its own.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::messages::Published;

/// One line of the results file.
#[derive(Serialize)]
pub struct Line<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub ipv4: std::net::Ipv4Addr,
    pub mac: crate::task::Mac,
    pub username: &'a str,
    pub published_at: String,
}

impl<'a> Line<'a> {
    pub fn new(p: &'a Published, published_at: String) -> Self {
        let t = &p.found.task;
        Line { id: &t.id, url: &p.url, ipv4: t.ipv4, mac: t.mac, username: &p.found.username, published_at }
    }
}

pub struct ResultsFile {
    file: File,
    path: PathBuf,
    id: String,
}

impl ResultsFile {
    /// Opens (creating) the file for appending; returns how many bytes of a
    /// partial last line were removed.
    pub fn open(path: &Path) -> io::Result<(ResultsFile, u64)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let removed = repair(&mut file)?;
        let id = file_id(path)?;
        Ok((ResultsFile { file, path: path.to_owned(), id }, removed))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's lasting name (`<path>.id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends whole lines and makes them durable; returns the file's length
    /// after them.
    pub fn append(&mut self, lines: &[u8]) -> io::Result<u64> {
        let before = self.file.metadata()?.len();
        let res = self.file.write_all(lines).and_then(|_| self.file.sync_data());
        if let Err(e) = res {
            // Never leave a partial line behind; if this fails too, the repair at
            // the next open does it.
            let _ = self.file.set_len(before).and_then(|_| self.file.sync_data());
            return Err(e);
        }
        Ok(before + lines.len() as u64)
    }

    /// (id, url) of every line after the checkpoint (all of them when the
    /// checkpoint is missing or beyond the end of the file).
    pub fn unsettled(&mut self) -> io::Result<Vec<(String, String)>> {
        let len = self.file.metadata()?.len();
        let mut from = read_checkpoint(&self.path);
        if from > len {
            from = 0;
        }
        self.file.seek(SeekFrom::Start(from))?;
        let mut out = Vec::new();
        let mut reader = io::BufReader::new(&self.file);
        let mut line = String::new();
        loop {
            line.clear();
            if io::BufRead::read_line(&mut reader, &mut line)? == 0 {
                break;
            }
            #[derive(serde::Deserialize)]
            struct IdUrl {
                id: String,
                url: String,
            }
            if let Ok(v) = serde_json::from_str::<IdUrl>(&line) {
                out.push((v.id, v.url));
            }
        }
        Ok(out)
    }
}

pub fn checkpoint_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".checkpoint");
    PathBuf::from(p)
}

/// The settled offset, 0 when there is none or it cannot be read.
pub fn read_checkpoint(path: &Path) -> u64 {
    std::fs::read_to_string(checkpoint_path(path)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Replaces the checkpoint atomically (write, then rename).
pub fn write_checkpoint(path: &Path, offset: u64) -> io::Result<()> {
    let target = checkpoint_path(path);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{offset}\n"))?;
    std::fs::rename(&tmp, &target)
}

/// The id of the results file at `path`, made (random, durable) when it has
/// none yet.
pub fn file_id(path: &Path) -> io::Result<String> {
    let mut p = path.as_os_str().to_owned();
    p.push(".id");
    let target = PathBuf::from(p);
    match std::fs::read_to_string(&target) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{id}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    Ok(id)
}

/// Cuts the file after its last newline.
fn repair(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut pos = len;
    let mut buf = vec![0u8; 64 * 1024];
    while pos > 0 {
        let start = pos.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep < len {
                file.set_len(keep)?;
                file.sync_data()?;
            }
            return Ok(len - keep);
        }
        pos = start;
    }
    file.set_len(0)?;
    file.sync_data()?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_keeps_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let (first, _) = ResultsFile::open(&path).unwrap();
        assert_eq!(first.id().len(), 32);
        let (again, _) = ResultsFile::open(&path).unwrap();
        assert_eq!(again.id(), first.id());
        let (other, _) = ResultsFile::open(&dir.path().join("other.jsonl")).unwrap();
        assert_ne!(other.id(), first.id());
    }

    #[test]
    fn repair_cuts_a_partial_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        for (content, want, removed) in [
            ("", "", 0),
            ("{\"id\":1}\n", "{\"id\":1}\n", 0),
            ("{\"id\":1}\n{\"id\":", "{\"id\":1}\n", 6),
            ("{\"id\":", "", 6),
        ] {
            std::fs::write(&path, content).unwrap();
            let (mut f, n) = ResultsFile::open(&path).unwrap();
            assert_eq!(n, removed, "{content:?}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
            let end = f.append(b"{\"id\":2}\n").unwrap();
            assert_eq!(end, want.len() as u64 + 9);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{want}{{\"id\":2}}\n"));
        }
    }

    #[test]
    fn unsettled_lines_are_those_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let line = |id: &str| format!("{{\"id\":\"{id}\",\"url\":\"http://x/{id}\"}}\n");
        std::fs::write(&path, format!("{}{}", line("a"), line("b"))).unwrap();
        let (mut f, _) = ResultsFile::open(&path).unwrap();
        let ids = |f: &mut ResultsFile| f.unsettled().unwrap().into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        assert_eq!(ids(&mut f), ["a", "b"], "no checkpoint: the whole file");
        write_checkpoint(&path, line("a").len() as u64).unwrap();
        assert_eq!(ids(&mut f), ["b"]);
        let end = f.append(line("c").as_bytes()).unwrap();
        assert_eq!(ids(&mut f), ["b", "c"]);
        assert_eq!(f.unsettled().unwrap()[1], ("c".to_owned(), "http://x/c".to_owned()));
        write_checkpoint(&path, end).unwrap();
        assert!(ids(&mut f).is_empty());
        write_checkpoint(&path, end + 100).unwrap();
        assert_eq!(ids(&mut f).len(), 3, "a checkpoint beyond the end: the whole file");
        std::fs::write(checkpoint_path(&path), "garbage").unwrap();
        assert_eq!(ids(&mut f).len(), 3);
    }

    #[test]
    fn repair_reads_long_lines_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let long = format!("{}\n{}", "a".repeat(100_000), "b".repeat(150_000));
        std::fs::write(&path, &long).unwrap();
        let (_, n) = ResultsFile::open(&path).unwrap();
        assert_eq!(n, 150_000);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 100_001);
    }
}
