// A payload codec that encrypts with AES-256-GCM, byte-compatible with the encryption codec Temporal
// teams use from Python (temporalio samples, `EncryptionCodec`): each payload becomes
//     metadata {"encoding": "binary/encrypted", "encryption-key-id": <key id>}
//     data     nonce (12 random bytes) || AES-GCM(key, nonce, serialized Payload) || tag (16 bytes)
// so a Python client or worker with the same key reads what weft writes, and the reverse. The server,
// its UI and anyone without the key see only ciphertext. Key management is yours: here the key comes
// from the caller (a KMS or a secret store in production).
#pragma once

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>
#include <string>
#include <vector>

#include <weft/temporal.hpp>

namespace example {

class aes_gcm_codec : public weft::temporal::payload_codec {
public:
    // `key`: 32 bytes.
    aes_gcm_codec(std::string key_id, std::string key) : key_id_(std::move(key_id)), key_(std::move(key)) {
        if (key_.size() != 32) throw weft::config_error("aes_gcm_codec: the key must be 32 bytes, not " + std::to_string(key_.size()));
    }

    std::vector<weft::temporal::payload> encode(std::vector<weft::temporal::payload> ps) const override {
        for (auto& p : ps) {
            const std::string plain = weft::temporal::serialize(p);
            std::string out(nonce_size + plain.size() + tag_size, '\0');
            auto* bytes = reinterpret_cast<unsigned char*>(out.data());
            if (RAND_bytes(bytes, nonce_size) != 1) throw weft::temporal::codec_error("aes_gcm_codec: no random nonce");
            ctx c;
            int n = 0;
            if (EVP_EncryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, key(), bytes) != 1 ||
                EVP_EncryptUpdate(c.get(), bytes + nonce_size, &n, reinterpret_cast<const unsigned char*>(plain.data()),
                                  static_cast<int>(plain.size())) != 1 ||
                EVP_EncryptFinal_ex(c.get(), bytes + nonce_size + n, &n) != 1 ||
                EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, tag_size, bytes + nonce_size + plain.size()) != 1)
                throw weft::temporal::codec_error("aes_gcm_codec: encryption failed");
            p = {{{"encoding", "binary/encrypted"}, {"encryption-key-id", key_id_}}, std::move(out)};
        }
        return ps;
    }

    std::vector<weft::temporal::payload> decode(std::vector<weft::temporal::payload> ps) const override {
        for (auto& p : ps) {
            auto enc = p.metadata.find("encoding");
            if (enc == p.metadata.end() || enc->second != "binary/encrypted") continue;  // not ours
            auto id = p.metadata.find("encryption-key-id");
            if (id == p.metadata.end() || id->second != key_id_)
                throw weft::temporal::codec_error("aes_gcm_codec: payload encrypted with key id '" +
                                                  (id == p.metadata.end() ? std::string() : id->second) +
                                                  "', this codec holds '" + key_id_ + "'");
            if (p.data.size() < nonce_size + tag_size)
                throw weft::temporal::codec_error("aes_gcm_codec: an encrypted payload of " + std::to_string(p.data.size()) +
                                                  " bytes is too short");
            const auto* bytes = reinterpret_cast<const unsigned char*>(p.data.data());
            const std::size_t cipher = p.data.size() - nonce_size - tag_size;
            std::string plain(cipher, '\0');
            ctx c;
            int n = 0;
            if (EVP_DecryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, key(), bytes) != 1 ||
                EVP_DecryptUpdate(c.get(), reinterpret_cast<unsigned char*>(plain.data()), &n, bytes + nonce_size,
                                  static_cast<int>(cipher)) != 1 ||
                EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, tag_size,
                                    const_cast<unsigned char*>(bytes + nonce_size + cipher)) != 1 ||
                EVP_DecryptFinal_ex(c.get(), reinterpret_cast<unsigned char*>(plain.data()) + n, &n) != 1)
                throw weft::temporal::codec_error("aes_gcm_codec: a payload does not decrypt with key '" + key_id_ +
                                                  "' (wrong key, or tampered)");
            p = weft::temporal::parse_payload(plain);
        }
        return ps;
    }

private:
    static constexpr int nonce_size = 12, tag_size = 16;
    struct ctx {
        std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> p{EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free};
        EVP_CIPHER_CTX* get() const { return p.get(); }
    };
    const unsigned char* key() const { return reinterpret_cast<const unsigned char*>(key_.data()); }

    std::string key_id_, key_;
};

}  // namespace example
