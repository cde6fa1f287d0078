import Foundation
import Logging
import TallyStore
#if canImport(Glibc)
import Glibc
#endif

/// A private PostgreSQL server for `tally serve` when no `DATABASE_URL` is given: the system's
/// PostgreSQL binaries, data under `.tally/postgres/data`, listening on 127.0.0.1 only, on a free
/// port, with a random password. PostgreSQL refuses to run as root, so when Tally runs as root
/// every server command runs as the unprivileged `postgres` user through `runuser`.
public final class EmbeddedPostgres: Sendable {
    public static let databaseName = "tally"
    public static let superuser = "tally"

    public let home: URL
    let logger: Logger
    let runAsUser: String?

    var dataDirectory: URL { home.appendingPathComponent("data") }
    /// A first initialisation happens here and is renamed to `data` only once complete, so that
    /// an interrupted first start leaves nothing half-made behind.
    var initDirectory: URL { home.appendingPathComponent("data.init") }
    var logFile: URL { home.appendingPathComponent("postgres.log") }
    var passwordFile: URL { home.appendingPathComponent("password") }
    var ownerFile: URL { home.appendingPathComponent("owner.pid") }

    /// - Parameter stateDirectory: the `.tally` folder; the server lives in its `postgres/`.
    public init(stateDirectory: URL, logger: Logger) {
        self.home = stateDirectory.appendingPathComponent("postgres")
        self.logger = logger
        self.runAsUser = getuid() == 0 ? "postgres" : nil
    }

    public enum Failure: Error, CustomStringConvertible {
        case binariesNotFound
        case noUnprivilegedUser(String)
        case command(String, Int32, String)

        public var description: String {
            switch self {
            case .binariesNotFound:
                "PostgreSQL server binaries were not found: install postgresql (Debian: apt-get install postgresql) or set TALLY_PG_BINDIR"
            case .noUnprivilegedUser(let user):
                "running as root, the embedded PostgreSQL needs the unprivileged user '\(user)' (created by Debian's postgresql package)"
            case .command(let command, let status, let output):
                "'\(command)' failed with status \(status): \(output)"
            }
        }
    }

    /// A server this process is responsible for: stopped only if its postmaster is still the one
    /// recorded here (never a server someone else started later on the same folder).
    public struct Running: Sendable {
        public let location: DatabaseLocation
        public let postmasterPID: Int32
        public let ownedByThisProcess: Bool
    }

    /// Starts the server (initialising it on first use) or adopts one already running on this
    /// data folder, and returns where to connect.
    public func start() async throws -> Running {
        let binaries = try Self.binaryDirectory()
        if let user = runAsUser, getpwnam(user) == nil { throw Failure.noUnprivilegedUser(user) }
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        try handOver(home)
        if !FileManager.default.fileExists(atPath: dataDirectory.appendingPathComponent("PG_VERSION").path) {
            try initialise(binaries)
        }
        let password = try String(contentsOf: passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        var started = false
        var port = try runningPort(binaries)
        if port == nil {
            let freePort = try Self.freeLoopbackPort()
            try run(binaries.appendingPathComponent("pg_ctl"), [
                "start", "-D", dataDirectory.path, "-l", logFile.path, "-w", "-t", "120",
                "-o", "-p \(freePort)",
            ])
            port = freePort
            started = true
            logger.info("embedded postgres started", metadata: ["db.port": "\(freePort)", "db.data": "\(dataDirectory.path)"])
        } else {
            logger.info("embedded postgres already running; using it", metadata: ["db.port": "\(port!)"])
        }
        if started || !ownerIsAlive() {
            try "\(getpid())".write(to: ownerFile, atomically: true, encoding: .utf8)
            started = true
        }
        let location = DatabaseLocation(host: "127.0.0.1", port: port!, username: Self.superuser, password: password, database: Self.databaseName)
        return Running(location: location, postmasterPID: postmasterPID() ?? -1, ownedByThisProcess: started)
    }

    /// Stops the server (fast shutdown: open transactions roll back, committed data is safe).
    public func stop(_ running: Running) throws {
        guard running.ownedByThisProcess, postmasterPID() == running.postmasterPID else { return }
        let binaries = try Self.binaryDirectory()
        guard try runningPort(binaries) != nil else { return }
        try run(binaries.appendingPathComponent("pg_ctl"), ["stop", "-D", dataDirectory.path, "-m", "fast", "-w", "-t", "60"])
        try? FileManager.default.removeItem(at: ownerFile)
        logger.info("embedded postgres stopped")
    }

    private func initialise(_ binaries: URL) throws {
        if FileManager.default.fileExists(atPath: initDirectory.path) {
            _ = try? run(binaries.appendingPathComponent("pg_ctl"), ["stop", "-D", initDirectory.path, "-m", "immediate", "-w"], allowFailure: true)
            try FileManager.default.removeItem(at: initDirectory)
        }
        let password = Self.randomPassword()
        try password.write(to: passwordFile, atomically: true, encoding: .utf8)
        chmod(passwordFile.path, 0o600)
        try handOver(passwordFile)
        try run(binaries.appendingPathComponent("initdb"), [
            "-D", initDirectory.path, "-U", Self.superuser, "--pwfile", passwordFile.path,
            "--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C",
        ])
        // Loopback only, no Unix socket: nothing outside this machine (or in another folder) can reach it.
        let settings = """

            # Tally's embedded server
            listen_addresses = '127.0.0.1'
            unix_socket_directories = ''
            max_connections = 100
            """
        let configFile = initDirectory.appendingPathComponent("postgresql.conf")
        let handle = try FileHandle(forWritingTo: configFile)
        handle.seekToEndOfFile()
        handle.write(Data(settings.utf8))
        handle.closeFile()
        // The database itself: start once, create it, stop again.
        let port = try Self.freeLoopbackPort()
        try run(binaries.appendingPathComponent("pg_ctl"), ["start", "-D", initDirectory.path, "-l", logFile.path, "-w", "-t", "120", "-o", "-p \(port)"])
        do {
            try run(binaries.appendingPathComponent("psql"), [
            "-h", "127.0.0.1", "-p", "\(port)", "-U", Self.superuser, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
            "-c", "CREATE DATABASE \(Self.databaseName)",
            ], environment: ["PGPASSWORD": password])
        } catch {
            _ = try? run(binaries.appendingPathComponent("pg_ctl"), ["stop", "-D", initDirectory.path, "-m", "fast", "-w"])
            throw error
        }
        try run(binaries.appendingPathComponent("pg_ctl"), ["stop", "-D", initDirectory.path, "-m", "fast", "-w"])
        try FileManager.default.moveItem(at: initDirectory, to: dataDirectory)
        logger.info("embedded postgres initialised", metadata: ["db.data": "\(dataDirectory.path)"])
    }

    /// The port of a server already running on this data folder, if any.
    private func runningPort(_ binaries: URL) throws -> Int? {
        let status = try run(binaries.appendingPathComponent("pg_ctl"), ["status", "-D", dataDirectory.path], allowFailure: true)
        guard status == 0 else { return nil }
        // postmaster.pid: pid, data dir, start time, port, ...
        let pidFile = try String(contentsOf: dataDirectory.appendingPathComponent("postmaster.pid"), encoding: .utf8)
        let lines = pidFile.split(separator: "\n", omittingEmptySubsequences: false)
        return lines.count > 3 ? Int(lines[3].trimmingCharacters(in: .whitespaces)) : nil
    }

    private func postmasterPID() -> Int32? {
        guard let text = try? String(contentsOf: dataDirectory.appendingPathComponent("postmaster.pid"), encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first.flatMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }

    private func ownerIsAlive() -> Bool {
        guard let text = try? String(contentsOf: ownerFile, encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return false }
        return kill(pid, 0) == 0
    }

    /// When running as root, the unprivileged server user must own its folder.
    private func handOver(_ url: URL) throws {
        guard let user = runAsUser, let entry = getpwnam(user) else { return }
        chown(url.path, entry.pointee.pw_uid, entry.pointee.pw_gid)
        // It must also be able to reach the folder: every parent needs the search (x) bit.
        var parent = url.deletingLastPathComponent()
        while parent.path != "/" {
            var info = stat()
            if stat(parent.path, &info) == 0, info.st_mode & 0o001 == 0 {
                logger.warning("allowing the postgres user to traverse a parent folder (o+x)", metadata: ["path": "\(parent.path)"])
                chmod(parent.path, mode_t(info.st_mode & 0o7777) | 0o001)
            }
            parent = parent.deletingLastPathComponent()
        }
    }

    @discardableResult
    private func run(_ executable: URL, _ arguments: [String], environment: [String: String] = [:], allowFailure: Bool = false) throws -> Int32 {
        let result: Subprocess.Result
        if let user = runAsUser {
            let envArguments = environment.map { "\($0.key)=\($0.value)" }
            result = try Subprocess.run("/usr/sbin/runuser", ["-u", user, "--", "/usr/bin/env"] + envArguments + [executable.path] + arguments,
                                        environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], workingDirectory: home.path)
        } else {
            let inherited = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            result = try Subprocess.run(executable.path, arguments, environment: inherited, workingDirectory: home.path)
        }
        if result.status != 0 && !allowFailure {
            let text = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure.command(([executable.lastPathComponent] + arguments.prefix(1)).joined(separator: " "), result.status, text)
        }
        return result.status
    }

    /// `TALLY_PG_BINDIR`, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
    static func binaryDirectory() throws -> URL {
        let fileManager = FileManager.default
        func valid(_ path: String) -> URL? {
            fileManager.isExecutableFile(atPath: path + "/initdb") ? URL(fileURLWithPath: path) : nil
        }
        if let path = ProcessInfo.processInfo.environment["TALLY_PG_BINDIR"], let url = valid(path) { return url }
        if let result = try? Subprocess.run("/usr/bin/env", ["pg_config", "--bindir"], environment: ProcessInfo.processInfo.environment, workingDirectory: "/"),
           result.status == 0, let url = valid(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) {
            return url
        }
        let versions = (try? fileManager.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            if let url = valid("/usr/lib/postgresql/\(version)/bin") { return url }
        }
        throw Failure.binariesNotFound
    }

    /// Asks the kernel for a free TCP port on 127.0.0.1.
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure.command("socket", errno, "cannot open a socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw Failure.command("bind", errno, "cannot bind to 127.0.0.1") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw Failure.command("getsockname", errno, "cannot read the port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func randomPassword() -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return String((0..<32).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }
}
