//! txt and lirs: one decimal object id per line.
//!
//! Both accept LF or CRLF endings, blanks around the number, and a last line without a newline.
//! They differ only in what they skip: lirs skips lines that are `*` or empty (the LIRS paper's
//! traces use `*` as a separator), counting them in `skipped`; txt treats an empty line as an
//! error, pointing at `--format lirs`. libCacheSim's txt reader also skips empty lines; we
//! refuse them in txt so that a damaged file does not pass unnoticed. Requests get size 1 (as
//! in libCacheSim), time 0, op read, no offset.

use std::{io::Read, path::PathBuf};

use crate::{
    Location, Request, TraceError,
    input::Input,
    num,
    readers::{Source, next_line, parse_err},
};

pub(crate) struct TextReader<R> {
    src: Source<R>,
    lirs: bool,
    line: u64,
    pub(crate) skipped: u64,
}

impl<R: Read> TextReader<R> {
    pub(crate) fn new(input: Input<R>, file: PathBuf, lirs: bool) -> Self {
        TextReader {
            src: Source::new(input, file),
            lirs,
            line: 0,
            skipped: 0,
        }
    }

    fn read(&mut self) -> Result<Option<Request>, TraceError> {
        loop {
            self.line += 1;
            let Some(line) = next_line(&mut self.src.input, &self.src.file, self.line)? else {
                return Ok(None);
            };
            let line = num::trim(line);
            if self.lirs && (line.is_empty() || line == b"*") {
                self.skipped += 1;
                continue;
            }
            if line.is_empty() {
                return Err(parse_err(
                    &self.src.file,
                    Location::Line(self.line),
                    "empty line (txt expects one id per line; `--format lirs` skips empty and `*` lines)",
                ));
            }
            let id = num::parse_u64(line, "object id")
                .map_err(|r| parse_err(&self.src.file, Location::Line(self.line), r))?;
            return Ok(Some(Request::object(id, 1)));
        }
    }
}

impl<R: Read> Iterator for TextReader<R> {
    type Item = Result<Request, TraceError>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.src.done {
            return None;
        }
        let r = self.read();
        self.src.fuse(r)
    }
}
