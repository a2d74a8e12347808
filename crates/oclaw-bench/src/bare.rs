//! `oclaw bench bare`: the ceiling a store sets, measured without the engine. A bare queue table
//! (id, status, payload) drained by claiming 100 rows and completing them 100 at a time — no
//! leases, fencing, attempts, checkpoints, tenants or executor. `oclaw bench drain` does the same
//! work with every guarantee kept; the ratio of the two is how much of the store's speed the
//! engine keeps. Same method as the drain: pre-load N rows, then time the drain.

use std::time::Instant;

/// SQLite: one writer thread, the store's own pragmas (WAL, `synchronous = NORMAL`); a claim is
/// one transaction, the completion of its rows another.
pub fn sqlite(tasks: usize, batch: usize) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let conn = rusqlite::Connection::open(dir.path().join("bare.db")).map_err(|e| e.to_string())?;
    let err = |e: rusqlite::Error| e.to_string();
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .map_err(err)?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;
         CREATE TABLE q (id INTEGER PRIMARY KEY, status INTEGER NOT NULL, payload TEXT NOT NULL);
         CREATE INDEX q_ready ON q (id) WHERE status = 0;",
    )
    .map_err(err)?;
    conn.execute_batch("BEGIN").map_err(err)?;
    {
        let mut insert = conn
            .prepare("INSERT INTO q (status, payload) VALUES (0, ?1)")
            .map_err(err)?;
        for i in 0..tasks {
            insert.execute([format!("{{\"i\":{i}}}")]).map_err(err)?;
        }
    }
    conn.execute_batch("COMMIT").map_err(err)?;
    let start = Instant::now();
    let mut claim = conn
        .prepare(&format!(
            "UPDATE q SET status = 1 WHERE id IN \
             (SELECT id FROM q WHERE status = 0 ORDER BY id LIMIT {batch}) RETURNING id, payload"
        ))
        .map_err(err)?;
    let mut complete = conn
        .prepare("UPDATE q SET status = 2 WHERE id = ?1")
        .map_err(err)?;
    let (mut done, mut rounds) = (0usize, 0usize);
    loop {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let claimed: Vec<(i64, String)> = claim
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        conn.execute_batch("COMMIT").map_err(err)?;
        if claimed.is_empty() {
            break;
        }
        conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        for (id, _payload) in &claimed {
            complete.execute([id]).map_err(err)?;
        }
        conn.execute_batch("COMMIT").map_err(err)?;
        done += claimed.len();
        rounds += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(format!(
        "bare queue (sqlite, one writer, claim {batch} + complete {batch} per transaction): \
         {done} rows in {elapsed:.3}s = {:.0} rows/s ({rounds} claims)",
        done as f64 / elapsed
    ))
}

/// PostgreSQL: `connections` connections, each claiming 100 rows with `FOR UPDATE SKIP LOCKED`
/// and completing them with one `unnest` update, in a schema of its own (dropped afterwards).
pub async fn postgres(
    url: &str,
    tasks: usize,
    batch: usize,
    connections: usize,
) -> Result<String, String> {
    let schema = format!("oclaw_bare_{}", std::process::id());
    let pg_err = |e: tokio_postgres::Error| match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    let connect = || async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(pg_err)?;
        tokio::spawn(conn);
        Ok::<_, String>(client)
    };
    let admin = connect().await?;
    let run = async {
        admin
            .batch_execute(&format!(
                "CREATE SCHEMA \"{schema}\";
                 CREATE TABLE \"{schema}\".q (id bigserial PRIMARY KEY, status int NOT NULL, payload jsonb NOT NULL);
                 CREATE INDEX q_ready ON \"{schema}\".q (id) WHERE status = 0;
                 INSERT INTO \"{schema}\".q (status, payload)
                   SELECT 0, jsonb_build_object('i', g) FROM generate_series(1, {tasks}) g;"
            ))
            .await
            .map_err(pg_err)?;
        admin
            .batch_execute(&format!("VACUUM ANALYZE \"{schema}\".q"))
            .await
            .map_err(pg_err)?;
        let start = Instant::now();
        let mut drains = Vec::new();
        for _ in 0..connections {
            let client = connect().await?;
            let schema = schema.clone();
            drains.push(tokio::spawn(async move {
                let claim = client
                    .prepare(&format!(
                        "UPDATE \"{schema}\".q SET status = 1 FROM \
                         (SELECT id FROM \"{schema}\".q WHERE status = 0 ORDER BY id LIMIT {batch} \
                          FOR UPDATE SKIP LOCKED) c WHERE q.id = c.id RETURNING q.id, q.payload"
                    ))
                    .await?;
                let complete = client
                    .prepare(&format!(
                        "UPDATE \"{schema}\".q SET status = 2 FROM unnest($1::bigint[]) AS d(id) \
                         WHERE q.id = d.id"
                    ))
                    .await?;
                let mut done = 0usize;
                loop {
                    let rows = client.query(&claim, &[]).await?;
                    if rows.is_empty() {
                        return Ok::<_, tokio_postgres::Error>(done);
                    }
                    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                    client.execute(&complete, &[&ids]).await?;
                    done += ids.len();
                }
            }));
        }
        let mut done = 0;
        for d in drains {
            done += d.await.map_err(|e| e.to_string())?.map_err(pg_err)?;
        }
        let elapsed = start.elapsed().as_secs_f64();
        Ok::<_, String>(format!(
            "bare queue (postgres, {connections} connections, SKIP LOCKED claim {batch} + unnest \
             complete): {done} rows in {elapsed:.3}s = {:.0} rows/s",
            done as f64 / elapsed
        ))
    }
    .await;
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
    run
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bare_sqlite_queue_drains_every_row_once() {
        let report = super::sqlite(1234, 100).expect("bare drain");
        // 1,234 rows in claims of 100: 13 claims, the last one short.
        assert!(report.contains(": 1234 rows in "), "{report}");
        assert!(report.contains("(13 claims)"), "{report}");
    }
}
