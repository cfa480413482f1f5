print("coalition")
