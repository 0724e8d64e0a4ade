def fewest_coins(coins, target):
    pass
