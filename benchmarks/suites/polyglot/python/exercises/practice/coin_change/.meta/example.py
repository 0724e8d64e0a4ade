def fewest_coins(coins, target):
    if target < 0:
        raise ValueError("negative target")
    best = [[]] + [None] * target
    for amount in range(1, target + 1):
        for coin in coins:
            rest = amount - coin
            if rest < 0 or best[rest] is None:
                continue
            if best[amount] is None or len(best[rest]) + 1 < len(best[amount]):
                best[amount] = [*best[rest], coin]
    if best[target] is None:
        raise ValueError("no combination")
    return sorted(best[target])
