// Child processes for the Temporal tests (Python peers and C++ worker processes, each stopped by its
// PID, never by name, and bounded in time), and unique names for queues and ids.
#pragma once

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace test_process {

class child {
public:
    // Runs argv[0] with `args`; its stdout goes to `output_file` when given (stderr stays the test's).
    explicit child(std::vector<std::string> args, const std::string& output_file = {}) {
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        if (!output_file.empty())
            posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int rc = ::posix_spawn(&pid_, args[0].c_str(), &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
    }
    ~child() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            if (wait(std::chrono::seconds(10)) < -1) {
                ::kill(pid_, SIGKILL);
                wait(std::chrono::seconds(5));
            }
        }
    }
    child(const child&) = delete;
    child& operator=(const child&) = delete;

    pid_t pid() const noexcept { return pid_; }
    void signal(int sig) const { ::kill(pid_, sig); }

    // The exit code (128 + signal if killed), or -2 if it still runs after `timeout`.
    int wait(std::chrono::milliseconds timeout) {
        const auto until = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            int status = 0;
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            if (r < 0) {
                pid_ = -1;
                return -1;
            }
            if (std::chrono::steady_clock::now() >= until) return -2;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

private:
    pid_t pid_ = -1;
};

// Waits for `path` to exist (a child's "I am ready" file); false after `timeout`.
inline bool wait_for_file(const std::filesystem::path& path, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!std::filesystem::exists(path)) {
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
}

// A name no other test run uses: queues, workflow ids, temporary files.
inline std::string unique(std::string_view prefix) {
    static std::mt19937_64 gen{std::random_device{}()};
    return std::string(prefix) + "-" + std::to_string(::getpid()) + "-" + std::to_string(gen() % 1'000'000'000);
}

inline std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace test_process
