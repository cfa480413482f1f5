extension ProgramLoader {
    /// `earn.funded_by`: a funder for each kind of bonus that is not a promotion; a kind left out
    /// keeps its default (`BonusFunding.defaults`).
    static func bonusFunding(_ map: MapReader, merchants: Set<MerchantID>) -> BonusFunding {
        var funding = BonusFunding.defaults
        guard let reader = map.map("funded_by", required: false) else { return funding }
        for key in reader.keys {
            guard BonusFunding.keys.contains(key) else {
                reader.diagnostics.fail(
                    reader.path.key(key),
                    "'\(key)' is not a kind of bonus: write one of \(BonusFunding.keys.joined(separator: ", ")) "
                        + "(a promotion names its funder itself)")
                _ = reader.node(key, required: false)
                continue
            }
            if let funder = funder(reader, key, merchants: merchants) { funding[key: key] = funder }
        }
        reader.finish()
        return funding
    }

    /// A funder at `key`: `merchant` (the merchant whose till recorded the transaction),
    /// `platform`, or the id of a merchant of the program. Nil when absent or wrong (reported).
    static func funder(_ map: MapReader, _ key: String, merchants: Set<MerchantID>) -> Funder? {
        guard let text = map.string(key, required: false, lengthMax: 64) else { return nil }
        guard let funder = Funder(text) else {
            map.diagnostics.fail(
                map.path.key(key), "'\(text)' is not a funder: write merchant, platform or a merchant id")
            return nil
        }
        if case .merchant(let id) = funder, !merchants.contains(id) {
            map.diagnostics.fail(map.path.key(key), "unknown merchant '\(id)'")
            return nil
        }
        return funder
    }
}
