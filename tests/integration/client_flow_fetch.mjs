#!/usr/bin/env node
// client_flow_fetch.mjs - the backup flow a user runs from the seed documentation (seed 004,
// "Backup Management"), written the way its JavaScript examples are: Node 20's built-in
// fetch with the same three headers, and nothing but node: core modules.
//
// Environment:
//   PANEL_URL   e.g. http://127.0.0.1:18555
//   API_KEY     a ptlc_ key with backup.read/create/download/delete/restore on the server
//   SERVER_ID   the server's 8-character short id
//   SERVER_DIR  absolute path of the server's directory on its node (it is modified and restored)
//   COMPARE     path of tests/tools/compare_trees.py
//   WORK        a scratch directory
//
// Prints one "ok - ..." / "not ok - ..." line per step and exits 1 on the first failure.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';

const env = {};
for (const v of ['PANEL_URL', 'API_KEY', 'SERVER_ID', 'SERVER_DIR', 'COMPARE', 'WORK']) {
    if (!process.env[v]) {
        console.log(`not ok - environment: ${v} is not set`);
        process.exit(2);
    }
    env[v] = process.env[v];
}
const PY = process.env.PYTHON || (spawnSync('python3', ['-c', '0']).status === 0 ? 'python3' : '/usr/bin/python3');
if (!fs.existsSync(env.SERVER_DIR) || !fs.statSync(env.SERVER_DIR).isDirectory()) {
    console.log(`not ok - environment: SERVER_DIR ${env.SERVER_DIR} is not a directory`);
    process.exit(2);
}
if (!fs.existsSync(env.COMPARE)) {
    console.log(`not ok - environment: COMPARE ${env.COMPARE} does not exist`);
    process.exit(2);
}
fs.mkdirSync(env.WORK, { recursive: true });

const PANEL_URL = env.PANEL_URL.replace(/\/+$/, '');
const SERVER = `${PANEL_URL}/api/client/servers/${env.SERVER_ID}`;
const BEFORE = path.join(env.WORK, 'before');
const ARCHIVE = path.join(env.WORK, 'b.tar.gz');
const EXTRACTED = path.join(env.WORK, 'extracted');
const EXCLUDES = ['--exclude', '*.log', '--exclude', 'cache'];
const FLOW_NAME = `client flow (fetch) ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} ${process.pid}`;
const HEADERS = {
    'Authorization': `Bearer ${env.API_KEY}`,
    'Accept': 'Application/vnd.pterodactyl.v1+json',
    'Content-Type': 'application/json',
};
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

let backup = '';    // uuid of the backup this run created, for cleanup on failure
let deleted = false;

// ---------------------------------------------------------------- helpers

class StepFailure extends Error {
    constructor(what, details) {
        super(what);
        this.details = details;
    }
}

function ok(what) {
    console.log(`ok - ${what}`);
}

function fail(what, ...details) {
    throw new StepFailure(what, details);
}

function excerpt(text) {
    if (text === undefined || text === null || text === '') return '(empty body)';
    const s = String(text).replace(/\s*\n\s*/g, ' ');
    return s.length > 600 ? `${s.slice(0, 600)}...` : s;
}

// A request to the client API as in seed 004's JavaScript examples. Resolves to
// {status, text, json} (json undefined when the body is not JSON); network errors and
// timeouts resolve to status 0 with the error in text.
async function api(method, urlPath, body, timeoutMs = 30000) {
    const url = urlPath.startsWith('http') ? urlPath : `${SERVER}${urlPath}`;
    const init = { method, headers: HEADERS, signal: AbortSignal.timeout(timeoutMs) };
    if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
    let response;
    let text;
    try {
        response = await fetch(url, init);
        text = await response.text();
    } catch (e) {
        return { status: 0, text: `request failed: ${e.cause?.message || e.message}`, json: undefined, what: `${method} ${url}` };
    }
    let json;
    try {
        json = text ? JSON.parse(text) : undefined;
    } catch {
        json = undefined;
    }
    return { status: response.status, text, json, what: `${method} ${url}` };
}

function expectStatus(r, want, what) {
    if (r.status !== want) fail(what, `${r.what} -> HTTP ${r.status || '000'}, want ${want}`, `body: ${excerpt(r.text)}`);
    return r;
}

// Evaluates pred(json), turning an exception (a missing field) into false.
function holds(r, pred) {
    try {
        return Boolean(pred(r.json));
    } catch {
        return false;
    }
}

function expectShape(r, pred, what) {
    if (!holds(r, pred)) fail(what, `${r.what} -> HTTP ${r.status}`, `body: ${excerpt(r.text)}`);
}

function run(cmd, args, what) {
    const p = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 300000 });
    if (p.error) fail(what, `${cmd}: ${p.error.message}`);
    return p;
}

function compareTrees(a, b) {
    const p = run(PY, [env.COMPARE, a, b, ...EXCLUDES], `compare ${a} and ${b}`);
    const out = `${p.stdout}${p.stderr}`.trim();
    return { same: p.status === 0, out };
}

const isInt = (n) => Number.isInteger(n);
const hasNull = (o, k) => Object.prototype.hasOwnProperty.call(o, k) && o[k] === null;

// ---------------------------------------------------------------- the flow

async function flow() {
    // 1. list
    let r = expectStatus(await api('GET', '/backups'), 200, 'list backups: GET /backups');
    expectShape(r, (d) => d.object === 'list' && Array.isArray(d.data) &&
        d.data.every((b) => b.object === 'backup' && typeof b.attributes.uuid === 'string') &&
        ['total', 'count', 'per_page', 'current_page', 'total_pages'].every((k) => isInt(d.meta.pagination[k])) &&
        isInt(d.meta.backup_count), 'list backups: a list with data, pagination and backup_count');
    ok(`list backups: 200, ${r.json.data.length} on the page, backup_count ${r.json.meta.backup_count}`);

    // 2. copy of the server
    // A leftover from an interrupted run would end up in the backup and spoil step 8's check.
    fs.rmSync(path.join(env.SERVER_DIR, 'added-after-backup.txt'), { force: true });
    // Give the ignore rules something to ignore: a file under cache/ (the demo server has *.log files).
    fs.mkdirSync(path.join(env.SERVER_DIR, 'cache'), { recursive: true });
    fs.writeFileSync(path.join(env.SERVER_DIR, 'cache', 'flow-cache.bin'), 'cached bytes\n');
    for (const p of [BEFORE, EXTRACTED, ARCHIVE]) fs.rmSync(p, { recursive: true, force: true });
    let p = run('cp', ['-a', env.SERVER_DIR, BEFORE], 'copy the server directory');
    if (p.status !== 0) fail(`copy the server directory to ${BEFORE}`, p.stderr.trim());
    ok(`copied ${env.SERVER_DIR} to ${BEFORE}`);

    // 3. create
    r = expectStatus(await api('POST', '/backups', { name: FLOW_NAME, ignored: '*.log\ncache/*', is_locked: false }),
        200, 'create a backup: POST /backups');
    expectShape(r, (d) => d.object === 'backup' &&
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(d.attributes.uuid),
    'create a backup: the body is a backup with a uuid');
    backup = r.json.attributes.uuid;
    expectShape(r, ({ attributes: a }) => a.name === FLOW_NAME &&
        JSON.stringify(a.ignored_files) === JSON.stringify(['*.log', 'cache/*']) &&
        hasNull(a, 'checksum') && hasNull(a, 'sha256_hash') && a.bytes === 0 &&
        ISO.test(a.created_at) && hasNull(a, 'completed_at') && hasNull(a, 'is_successful') &&
        a.is_locked === false, 'create a backup: the attributes of a new backup');
    ok(`create a backup: 200, backup ${backup}, created_at ${r.json.attributes.created_at}`);

    // 4. poll until complete
    let start = Date.now();
    for (;;) {
        r = await api('GET', `/backups/${backup}`);
        if (r.status === 200 && holds(r, (d) => d.attributes.completed_at !== null)) break;
        if (r.status !== 200 && r.status !== 429) expectStatus(r, 200, `poll the backup: GET /backups/${backup}`);
        if (Date.now() - start > 60000) fail('poll the backup: completed within 60 s', `last: HTTP ${r.status}`, `body: ${excerpt(r.text)}`);
        await sleep(200);
    }
    expectShape(r, ({ attributes: a }) => a.is_successful === true && /^sha1:[0-9a-f]{40}$/.test(a.checksum) &&
        isInt(a.bytes) && a.bytes > 0 && ISO.test(a.completed_at),
    'poll the backup: successful, sha1 checksum, bytes > 0');
    const { checksum, bytes } = r.json.attributes;
    const sha1 = checksum.slice('sha1:'.length);
    ok(`backup completed after ${Date.now() - start} ms: successful, ${checksum}, ${bytes} bytes`);

    // 5. pagination, and the backup is listed
    r = expectStatus(await api('GET', '/backups?per_page=1&page=1'), 200, 'list one per page: GET /backups?per_page=1&page=1');
    expectShape(r, ({ object, data, meta: { pagination: pg } }) => object === 'list' && data.length === 1 &&
        pg.per_page === 1 && pg.current_page === 1 && pg.count === 1 && pg.total >= 1 && pg.total_pages === pg.total,
    'list one per page: pagination with per_page 1');
    ok(`list one per page: per_page 1, total ${r.json.meta.pagination.total}`);

    let page = 1;
    let entry;
    for (; page <= 200; page++) {
        r = expectStatus(await api('GET', `/backups?page=${page}`), 200, `full list, page ${page}`);
        expectShape(r, (d) => Array.isArray(d.data), `full list, page ${page}: a list`);
        entry = r.json.data.find((b) => b.attributes?.uuid === backup);
        if (entry || !holds(r, (d) => page < d.meta.pagination.total_pages)) break;
    }
    if (!entry) fail(`full list: backup ${backup} is listed`, `searched ${page} page(s); last body: ${excerpt(r.text)}`);
    if (entry.attributes.checksum !== checksum) fail(`full list: the entry for ${backup} shows its checksum`, `entry: ${excerpt(JSON.stringify(entry))}`);
    ok(`full list: backup ${backup} is listed (page ${page})`);

    // 6. download
    r = expectStatus(await api('GET', `/backups/${backup}/download`), 200, `download link: GET /backups/${backup}/download`);
    expectShape(r, (d) => d.object === 'signed_url' && /^https?:\/\//.test(d.attributes.url), 'download link: a signed_url object with a URL');
    const url = r.json.attributes.url;
    ok(`download link: signed URL ${url.replace(/(token=.{8}).*/, '$1...')}`);

    // The signed URL needs no Authorization header.
    let dl;
    let archive;
    try {
        dl = await fetch(url, { signal: AbortSignal.timeout(300000) });
        archive = Buffer.from(await dl.arrayBuffer());
    } catch (e) {
        fail('download the archive without Authorization', `GET ${url}: ${e.cause?.message || e.message}`);
    }
    if (dl.status !== 200) fail('download the archive without Authorization', `HTTP ${dl.status}`, `body: ${excerpt(archive.toString('utf8', 0, 600))}`);
    fs.writeFileSync(ARCHIVE, archive);
    const gotSha1 = createHash('sha1').update(archive).digest('hex');
    if (gotSha1 !== sha1) fail("the archive's sha1 matches the checksum", `sha1 ${gotSha1}, checksum ${checksum}`);
    if (archive.length !== bytes) fail("the archive's size matches bytes", `${archive.length} bytes downloaded, attributes say ${bytes}`);
    ok(`downloaded ${archive.length} bytes to ${ARCHIVE}; sha1 ${gotSha1} matches the checksum`);

    p = run('tar', ['-tzf', ARCHIVE], 'tar -tzf lists the archive');
    if (p.status !== 0) fail('tar -tzf lists the archive', excerpt(p.stderr));
    const names = p.stdout.split('\n').filter(Boolean).map((n) => n.replace(/^\.\//, ''));
    const ignored = names.filter((n) => n.endsWith('.log') || /(^|\/)cache\/.+/.test(n));
    if (ignored.length) fail('the archive leaves out the ignored files (*.log, cache/*)', `listed: ${ignored.slice(0, 5).join(' ')}`);
    ok(`tar -tzf lists ${names.length} entries, none of them ignored (*.log, cache/*)`);

    fs.mkdirSync(EXTRACTED, { recursive: true });
    p = run('tar', ['-xpzf', ARCHIVE, '-C', EXTRACTED], 'extract the archive');
    if (p.status !== 0) fail('extract the archive', excerpt(p.stderr));
    let cmp = compareTrees(BEFORE, EXTRACTED);
    if (!cmp.same) fail("the extracted archive is the server's tree (excluding *.log, cache)", ...cmp.out.split('\n').slice(0, 20));
    ok(`the extracted archive equals the copy: ${cmp.out.split('\n')[0]}`);

    try {
        const again = await fetch(url, { signal: AbortSignal.timeout(30000) });
        await again.arrayBuffer();
        if (again.status !== 404) fail('the signed URL is one-time: a second download is 404', `HTTP ${again.status}`);
    } catch (e) {
        if (e instanceof StepFailure) throw e;
        fail('the signed URL is one-time: a second download is 404', `GET ${url}: ${e.cause?.message || e.message}`);
    }
    ok('the signed URL is one-time: a second download gets 404');

    // 7. lock
    expectStatus(await api('POST', `/backups/${backup}/lock`), 204, `lock: POST /backups/${backup}/lock`);
    r = expectStatus(await api('GET', `/backups/${backup}`), 200, 'lock: GET the backup');
    expectShape(r, (d) => d.attributes.is_locked === true, 'lock: the backup shows is_locked true');
    ok('lock: 204, is_locked true');

    r = expectStatus(await api('DELETE', `/backups/${backup}`), 400, `delete a locked backup: DELETE /backups/${backup}`);
    expectShape(r, (d) => d.errors[0].code === 'BackupIsLockedException', 'delete a locked backup: errors[0].code is BackupIsLockedException');
    ok('delete a locked backup: 400 BackupIsLockedException');

    expectStatus(await api('POST', `/backups/${backup}/unlock`), 204, `unlock: POST /backups/${backup}/unlock`);
    r = expectStatus(await api('GET', `/backups/${backup}`), 200, 'unlock: GET the backup');
    expectShape(r, (d) => d.attributes.is_locked === false, 'unlock: the backup shows is_locked false');
    ok('unlock: 204, is_locked false');

    // 8. restore
    const added = path.join(env.SERVER_DIR, 'added-after-backup.txt');
    fs.writeFileSync(added, 'this file did not exist when the backup was taken\n');
    // A regular file the archive has (not an ignored one), preferring a top-level one.
    const victim = names
        .filter((n) => !n.endsWith('/') && !n.endsWith('.log') && !n.startsWith('cache/'))
        .filter((n) => { try { return fs.lstatSync(path.join(BEFORE, n)).isFile(); } catch { return false; } })
        .sort((a, b) => (a.split('/').length - b.split('/').length) || (a < b ? -1 : a > b ? 1 : 0))[0];
    if (!victim || !fs.existsSync(path.join(env.SERVER_DIR, victim))) fail('change the server: pick a backed-up regular file to delete', 'none found');
    fs.rmSync(path.join(env.SERVER_DIR, victim));
    ok(`changed the server: added added-after-backup.txt, deleted ${victim}`);

    expectStatus(await api('POST', `/backups/${backup}/restore`, { truncate: true }), 202, `restore: POST /backups/${backup}/restore {"truncate":true}`);
    ok('restore: 202');

    start = Date.now();
    for (;;) {
        r = await api('GET', SERVER);
        if (r.status === 200 && holds(r, (d) => d.object === 'server' && d.attributes.status === null)) break;
        if (r.status !== 200 && r.status !== 429) expectStatus(r, 200, `poll the server: GET /api/client/servers/${env.SERVER_ID}`);
        if (Date.now() - start > 60000) fail('poll the server: status back to null within 60 s', `last: HTTP ${r.status}`, `body: ${excerpt(r.text)}`);
        await sleep(200);
    }
    expectShape(r, ({ attributes: a }) => 'identifier' in a && 'uuid' in a && 'status' in a,
        'poll the server: a server object with identifier, uuid, status');
    ok(`the server's status is null again after ${Date.now() - start} ms (identifier ${r.json.attributes.identifier})`);

    if (fs.existsSync(added)) fail('restore: added-after-backup.txt is gone (truncate)');
    if (!fs.existsSync(path.join(env.SERVER_DIR, victim))) fail(`restore: ${victim} is back`);
    cmp = compareTrees(BEFORE, env.SERVER_DIR);
    if (!cmp.same) fail("restore: the server's tree equals the copy (excluding *.log, cache)", ...cmp.out.split('\n').slice(0, 20));
    ok(`restore: added file gone, ${victim} back, tree equals the copy: ${cmp.out.split('\n')[0]}`);

    // 9. delete
    expectStatus(await api('DELETE', `/backups/${backup}`), 204, `delete: DELETE /backups/${backup}`);
    deleted = true;
    ok('delete: 204');

    r = expectStatus(await api('GET', `/backups/${backup}`), 404, `deleted: GET /backups/${backup}`);
    expectShape(r, (d) => d.errors[0].code === 'NotFoundHttpException', 'deleted: errors[0].code is NotFoundHttpException');
    ok('deleted: GET the backup gives 404 NotFoundHttpException');
}

try {
    await flow();
    console.log('# all steps passed');
    process.exit(0);
} catch (e) {
    if (e instanceof StepFailure) {
        console.log(`not ok - ${e.message}`);
        for (const d of e.details) console.log(`#   ${d}`);
    } else {
        console.log(`not ok - unexpected error: ${e.stack || e}`);
    }
    // Best effort: do not leave a locked backup behind that would hold a backup slot.
    if (backup && !deleted) {
        console.log(`# cleanup: unlocking and deleting backup ${backup}`);
        await api('POST', `/backups/${backup}/unlock`);
        await api('DELETE', `/backups/${backup}`);
    }
    process.exit(1);
}
